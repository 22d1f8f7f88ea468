"""``serve``: load the model once, then fork gunicorn workers that share it.

The model is loaded in the master before the fork (``preload_app``), so N workers share one copy
of its matrices copy-on-write instead of holding N private copies. A model or label problem stops
start-up with a message that says what was found and exits non-zero, before any port is bound.

``SERVE_PARENT_FD`` (set by the local mode, never in SageMaker) names the read end of a pipe whose
write end only the parent holds: when the parent dies, however it dies, the read sees end-of-file and
the server stops itself as on SIGTERM, so no server outlives the program that started it.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading

from gunicorn.app.base import BaseApplication

from fasttext_server import modes, worker
from fasttext_server.app import InferenceApp
from fasttext_server.config import ConfigError, ServerConfig
from fasttext_server.model import Classifier, ModelError

log = logging.getLogger("fasttext_server")
# The time a request's headers may take (gunicorn's keepalive; every connection still closes after one request).
KEEPALIVE_SECONDS = 5


class _Gunicorn(BaseApplication):
    def __init__(self, app: InferenceApp, config: ServerConfig):
        self._app, self._config = app, config
        super().__init__()

    def load_config(self):
        c = self._config
        settings = {
            "bind": f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}",
            "workers": c.workers,
            "worker_class": "fasttext_server.worker.Worker",
            "post_fork": worker.post_fork,
            "worker_connections": c.max_connections,  # open connections per worker (worker.Worker._shed_idle)
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": c.timeout,
            # SageMaker sends SIGKILL 30 s after SIGTERM: requests in flight get 25 s to finish
            "graceful_timeout": min(c.timeout, 25),
            "preload_app": True,
            "loglevel": c.log_level,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "fasttext-serve",
            # no runtime-management socket: nothing in SageMaker uses it, and it needs a writable home
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        return self._app


def _invoke_for(config: ServerConfig) -> modes.Invoke:
    limits = modes.Limits(config.max_records, config.max_response_bytes, config.max_text_chars)
    if config.mode not in modes.NEEDS_MODEL:
        if config.labels is None:
            raise ConfigError(f"SERVE_MODE={config.mode} needs LABELS: the answer order of the pipeline")
        adapter = modes.pre_adapter if config.mode == "pre-adapter" else modes.post_adapter
        return adapter(config.labels, limits)
    classifier = Classifier.load(config.model_dir, config.labels)
    if config.labels is None:
        log.info("LABELS is not set; answering in sorted label order %s", classifier.labels)
    if config.mode == "explain":  # imports the explainer only in this mode
        from fasttext_server.explain_mode import explain

        return explain(classifier, limits)
    return modes.model(classifier, limits) if config.mode == "model" else modes.blazingtext(classifier, limits)


def _stop_with_parent(env=os.environ) -> None:
    """Watch the pipe named by SERVE_PARENT_FD: its end-of-file means the parent is gone."""
    raw = env.get("SERVE_PARENT_FD", "").strip()
    if not raw.isdigit():
        return
    fd = int(raw)

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        log.warning("the parent process is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _enough_descriptors(wanted: int) -> None:
    """Raise the soft open-file limit (per process, inherited by the workers) towards ``wanted``, never past the hard
    limit: a worker that runs out of descriptors cannot accept, and its queue, /ping included, waits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open-file limit %d is below the %d the connection bound needs", target, wanted)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    _stop_with_parent()
    try:
        config = ServerConfig.from_env()
        invoke = _invoke_for(config)
    except (ConfigError, ModelError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    _enough_descriptors(config.max_connections + 64)  # a worker's connections, its listeners, model and logs
    app = InferenceApp(invoke, config.max_payload_bytes, config.workers, config.request_budget)
    log.info(
        "serving (%s) on %s:%d with %d workers; per request at most %d records, %d-byte answers, %d-character texts",
        config.mode, config.host, config.port, config.workers,
        config.max_records, config.max_response_bytes, config.max_text_chars,
    )  # fmt: skip
    _Gunicorn(app, config).run()
    return 0
