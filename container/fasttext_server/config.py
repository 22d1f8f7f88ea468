"""Server settings from the environment SageMaker (and the local mode) sets. One place, clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class ServerConfig:
    model_dir: str = "/opt/ml/model"
    labels: list[str] | None = None
    host: str = "0.0.0.0"  # noqa: S104 - inside the container SageMaker reaches us on any interface
    port: int = 8080
    workers: int = 1
    timeout: int = 60
    max_payload_bytes: int = 6 * 1024 * 1024
    # Bounded work per request (docs/container.md, "Limits"): records, answer size, text length.
    max_records: int = 10_000
    max_response_bytes: int = 5 * 1024 * 1024  # below InvokeEndpoint's 6 MB answer limit
    max_text_chars: int = 5_000  # the same default as the stage config's limits.max_text_chars (prepare)
    # open connections per worker; a full worker sheds the one waiting longest for its request (worker.py,
    # docs/container.md), so a flood of idle connections never holds /ping
    max_connections: int = 256
    log_level: str = "info"
    mode: str = "model"  # model | blazingtext | pre-adapter | post-adapter (the `pipeline` hosting mode)

    @property
    def request_budget(self) -> float:
        """Seconds a request may take, body included: answered before the worker timeout can fire."""
        return max(0.5, min(self.timeout * 0.9, self.timeout - 2.0))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if env is None else env
        return cls(
            model_dir=env.get("SM_MODEL_DIR", cls.model_dir),
            labels=_labels(env.get("LABELS")),
            host=env.get("SERVE_HOST", cls.host),
            port=bounded_int(env, "SAGEMAKER_BIND_TO_PORT", cls.port, 1, 65535),
            workers=bounded_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1, 256),
            timeout=bounded_int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", cls.timeout, 1, 3600),
            max_payload_bytes=bounded_int(env, "MAX_PAYLOAD_BYTES", cls.max_payload_bytes, 1, 1 << 31),
            max_records=bounded_int(env, "MAX_RECORDS", cls.max_records, 1, 10_000_000),
            max_response_bytes=bounded_int(env, "MAX_RESPONSE_BYTES", cls.max_response_bytes, 1024, 1 << 31),
            max_text_chars=bounded_int(env, "MAX_TEXT_CHARS", cls.max_text_chars, 1, 1 << 31),
            max_connections=bounded_int(env, "MAX_CONNECTIONS_PER_WORKER", cls.max_connections, 2, 100_000),
            log_level=env.get("LOG_LEVEL", cls.log_level).lower(),
            mode=_mode(env.get("SERVE_MODE", cls.mode)),
        )


def bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int, why: str = "") -> int:
    """``env[name]`` as a whole number in ``low..high`` (``default`` when unset or blank); anything else refused with
    a ConfigError naming the variable (and ``why`` the bound is what it is, if given)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}" + (f" ({why})" if why else ""))
    return value


def _labels(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f'LABELS is not JSON ({exc}); expected a list such as ["a", "b"]') from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"LABELS must be a non-empty JSON list of non-empty strings, got {raw!r}")
    return value


def _mode(raw: str) -> str:
    from fasttext_server.modes import MODES

    value = raw.strip().lower()
    if value not in MODES:
        raise ConfigError(f"SERVE_MODE={raw!r} is not one of {list(MODES)}")
    return value
