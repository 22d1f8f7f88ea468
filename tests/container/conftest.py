"""The container tests talk HTTP to a base URL: the real ``serve`` program on 127.0.0.1.

``served_labels`` is deliberately not the model's own order, so every test also checks that
answers follow LABELS.
"""

from __future__ import annotations

import pytest

from textexplain.serving import ServeProcess


@pytest.fixture(scope="session")
def served_labels(trained_model) -> list[str]:
    return list(reversed(trained_model.labels))


@pytest.fixture(scope="session")
def server(trained_model, served_labels):
    with ServeProcess(trained_model.model_dir, served_labels, workers=2) as process:
        yield process


@pytest.fixture(scope="session")
def server_url(server) -> str:
    return server.url
