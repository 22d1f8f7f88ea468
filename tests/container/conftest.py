"""The container tests talk HTTP to a base URL, twice: the ``serve`` program as a local process, and
the real image built from container/ (podman), both on 127.0.0.1.

``served_labels`` is deliberately not the model's own order, so every test also checks that
answers follow LABELS.
"""

from __future__ import annotations

import pytest

from textexplain.serving import ServeProcess


@pytest.fixture(scope="session")
def served_labels(trained_model) -> list[str]:
    return list(reversed(trained_model.labels))


@pytest.fixture(scope="session", params=["process", "image"])
def server(request, trained_model, served_labels, tmp_path_factory):
    if request.param == "process":
        with ServeProcess(trained_model.model_dir, served_labels, workers=2) as process:
            yield process
        return
    from tests.support.image import ImageServer, readable_copy

    request.getfixturevalue("built_image")
    model_dir = readable_copy(trained_model.model_dir, tmp_path_factory.mktemp("image-model") / "model")
    with ImageServer(model_dir, served_labels, workers=2) as container:
        yield container


@pytest.fixture(scope="session")
def server_url(server) -> str:
    return server.url
