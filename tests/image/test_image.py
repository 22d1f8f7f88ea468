"""Checks only the real image can answer: start-up, size, user, ports, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.support.image import ImageServer, build, expected_base, podman, readable_copy

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def model_dir(trained_model, tmp_path_factory):
    return readable_copy(trained_model.model_dir, tmp_path_factory.mktemp("image-only") / "model")


@pytest.fixture(scope="module")
def running(built_image, model_dir, trained_model):
    with ImageServer(model_dir, trained_model.labels) as server:
        yield server


def test_starts_to_a_healthy_ping_quickly_and_answers(running, trained_model):
    assert running.startup_seconds < 30
    body = '"a river and a lake"\n'
    resp = requests.post(running.url + "/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=10)
    assert resp.status_code == 200
    assert json.loads(resp.text)["label"] == "NaturalPlace"


def test_image_is_small_enough_and_labelled_for_pipelines(built_image):
    info = json.loads(podman("image", "inspect", built_image).stdout)[0]
    assert info["Size"] < 700 * 1024 * 1024, info["Size"]
    assert info["Config"]["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert info["Config"]["User"] == "10001"


def test_built_on_the_base_it_was_given_and_no_upstream_name_is_retagged(built_image):
    info = json.loads(podman("image", "inspect", built_image).stdout)[0]
    assert info["Config"]["Labels"]["org.opencontainers.image.base.name"] == expected_base()
    # Build again and read podman's own record of the names given meanwhile (the storage itself may be shared with
    # other checkouts, so what names exist proves nothing about this script): only local names, never an upstream one.
    since = datetime.now(UTC).isoformat()
    assert build() == built_image
    events = podman("events", "--stream=false", "--since", since, "--filter", "event=tag", "--format", "{{.Name}}")
    tagged = set(events.stdout.split())
    assert all(name.startswith("localhost/") for name in tagged), tagged  # never docker.io/library/python:…


def listening_ports(server: ImageServer) -> set[int]:
    tcp = podman("exec", server.name, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout.splitlines()
    return {int(line.split()[1].rsplit(":", 1)[1], 16) for line in tcp[1:] if line.split()[3:4] == ["0A"]}


def test_runs_as_non_root_and_listens_only_on_8080(running):
    assert podman("exec", running.name, "id", "-u").stdout.strip() == "10001"
    assert listening_ports(running) == {8080}


def test_bind_to_port_is_honoured(built_image, model_dir, trained_model):
    env = {"SAGEMAKER_BIND_TO_PORT": "9090"}
    with ImageServer(model_dir, trained_model.labels, env=env, container_port=9090) as server:
        assert listening_ports(server) == {9090}
        headers = {"Content-Type": "text/csv"}
        resp = requests.post(server.url + "/invocations", data='"a lake"\n', headers=headers, timeout=10)
        assert resp.status_code == 200


def test_sigterm_stops_cleanly_within_the_timeout(built_image, model_dir, trained_model):
    with ImageServer(model_dir, trained_model.labels) as server:
        started = time.monotonic()
        podman("stop", "-t", "30", server.name)
        elapsed = time.monotonic() - started
        state = json.loads(podman("inspect", server.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    assert elapsed < 25


def test_label_mismatch_refuses_to_start(built_image, model_dir, trained_model):
    server = ImageServer(model_dir, [*trained_model.labels[1:], "Dinosaur"])
    try:
        with pytest.raises(RuntimeError, match="not in the model \\['Dinosaur'\\]"):
            server.start(timeout=20)
    finally:
        server.remove()


def test_sigterm_answers_the_requests_it_accepted(built_image, model_dir, trained_model):
    import threading

    from fasttext_server.codec import encode_csv_batch

    body = encode_csv_batch([f"text number {i} about a river near a lake" for i in range(8000)])
    results: list = []

    def client(url: str) -> None:
        try:
            resp = requests.post(url + "/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=60)
            results.append(resp.status_code)
        except requests.RequestException as exc:
            results.append(repr(exc))

    with ImageServer(model_dir, trained_model.labels) as server:
        clients = [threading.Thread(target=client, args=(server.url,)) for _ in range(12)]
        for t in clients:
            t.start()
        time.sleep(0.5)
        podman("stop", "-t", "30", server.name)
        for t in clients:
            t.join(timeout=60)
        state = json.loads(podman("inspect", server.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    assert results == [200] * 12
