"""``serve``: load the model once, then fork gunicorn workers that share it.

The model is loaded in the master before the fork (``preload_app``), so N workers share one copy
of its matrices copy-on-write instead of holding N private copies. A model or label problem stops
start-up with a message that says what was found and exits non-zero, before any port is bound.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.app.base import BaseApplication

from fasttext_server import modes
from fasttext_server.app import InferenceApp
from fasttext_server.config import ConfigError, ServerConfig
from fasttext_server.model import Classifier, ModelError

log = logging.getLogger("fasttext_server")


class _Gunicorn(BaseApplication):
    def __init__(self, app: InferenceApp, config: ServerConfig):
        self._app, self._config = app, config
        super().__init__()

    def load_config(self):
        c = self._config
        settings = {
            "bind": f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}",
            "workers": c.workers,
            "worker_class": "sync",
            "timeout": c.timeout,
            "graceful_timeout": min(c.timeout, 20),
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
    if config.mode not in modes.NEEDS_MODEL:
        if config.labels is None:
            raise ConfigError(f"SERVE_MODE={config.mode} needs LABELS: the answer order of the pipeline")
        return modes.pre_adapter(config.labels) if config.mode == "pre-adapter" else modes.post_adapter(config.labels)
    classifier = Classifier.load(config.model_dir, config.labels)
    if config.labels is None:
        log.info("LABELS is not set; answering in sorted label order %s", classifier.labels)
    return modes.model(classifier) if config.mode == "model" else modes.blazingtext(classifier)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        config = ServerConfig.from_env()
        invoke = _invoke_for(config)
    except (ConfigError, ModelError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    app = InferenceApp(invoke, config.max_payload_bytes, config.workers)
    log.info("serving (%s) on %s:%d with %d workers", config.mode, config.host, config.port, config.workers)
    _Gunicorn(app, config).run()
    return 0
