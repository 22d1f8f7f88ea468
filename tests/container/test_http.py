"""The running server, over HTTP, as Clarify and SageMaker talk to it."""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fasttext_server.codec import encode_csv_batch
from fasttext_server.model import Classifier
from tests.support.wire import clarify_batch, decode_jsonlines_response
from textexplain import synthetic

CSV = {"Content-Type": "text/csv"}


def invoke(url: str, body: bytes, headers: dict | None = None) -> requests.Response:
    return requests.post(url + "/invocations", data=body, headers=headers or CSV, timeout=30)


def test_ping_and_execution_parameters(server_url):
    assert requests.get(server_url + "/ping", timeout=5).status_code == 200
    params = requests.get(server_url + "/execution-parameters", timeout=5).json()
    assert params == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_clarify_batch_equals_the_in_process_model(server_url, trained_model, served_labels):
    text = 'The river, "Aare", flows into a lake near Zürich; the valley is famous.\nIts glacier melts.'
    batch = [*clarify_batch(text, 500), "", "<UNK>", 'quote "inside"', "multi\nline\n\ntext"]
    resp = invoke(server_url, encode_csv_batch(batch), {"Content-Type": "text/csv; charset=utf-8"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/jsonlines"
    records = decode_jsonlines_response(resp.content)
    assert len(records) == len(batch)
    probs = np.array([r["prob"] for r in records], dtype=np.float32)
    expected = Classifier(trained_model.model, served_labels).predict(batch)
    np.testing.assert_array_equal(probs, expected)
    assert [r["label"] for r in records] == [served_labels[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=len(served_labels) * 1.1e-5)
    assert records[0]["label"] == "NaturalPlace"


def test_json_request_and_response(server_url, served_labels):
    body = json.dumps({"instances": ["a river and a lake", {"text": "the striker won a medal"}]}).encode()
    resp = invoke(server_url, body, {"Content-Type": "application/json", "Accept": "application/json"})
    assert resp.status_code == 200
    predictions = resp.json()["predictions"]
    assert [p["label"] for p in predictions] == ["NaturalPlace", "Athlete"]
    assert all(len(p["prob"]) == len(served_labels) for p in predictions)


def test_jsonlines_request(server_url):
    resp = invoke(
        server_url,
        b'"the novel was published"\n{"text": "a film directed by"}\n',
        {"Content-Type": "application/jsonlines"},
    )
    assert [r["label"] for r in decode_jsonlines_response(resp.content)] == ["WrittenWork", "Film"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b'"ok"\n"two","columns"\n', CSV, 400, "too_many_columns"),
        (b'"ok"\n"bad"quote\n', CSV, 400, "malformed_csv"),
        (b'"caf\xe9"\n', CSV, 400, "invalid_encoding"),
        (b"", CSV, 400, "empty_body"),
        (b"x", {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        (b"x", {"Content-Type": "text/csv", "Accept": "text/html"}, 406, "unsupported_accept"),
    ],
)
def test_bad_requests_get_json_errors_and_the_server_keeps_serving(server_url, body, headers, status, error):
    resp = invoke(server_url, body, headers)
    assert resp.status_code == status
    assert resp.json()["error"] == error
    assert resp.json()["detail"]
    assert invoke(server_url, b'"still serving"\n').status_code == 200


def test_payload_over_the_limit_is_413(server_url):
    body = encode_csv_batch(["x" * 1000] * 6500)  # ~6.5 MB > 6 MiB
    resp = invoke(server_url, body)
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"


def test_unknown_route_and_wrong_method(server_url):
    assert requests.get(server_url + "/nope", timeout=5).status_code == 404
    assert requests.get(server_url + "/invocations", timeout=5).status_code == 405
    assert requests.post(server_url + "/ping", timeout=5).status_code == 405


def test_concurrent_clients_get_every_answer(server_url):
    texts = [e.text for e in synthetic.generate(40, seed=21)]
    errors: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            for _ in range(200):
                batch = rng.sample(texts, rng.randint(1, 8))
                resp = session.post(server_url + "/invocations", data=encode_csv_batch(batch), headers=CSV, timeout=30)
                if resp.status_code != 200 or len(decode_jsonlines_response(resp.content)) != len(batch):
                    errors.append(f"{resp.status_code}: {resp.text[:200]}")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "clients did not finish within 120 s"
    assert errors == []
    assert time.monotonic() - started < 120


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=25))
def test_any_list_of_strings_gets_exactly_that_many_answers(server_url, batch):
    resp = invoke(server_url, encode_csv_batch(batch))
    assert resp.status_code == 200, resp.text
    assert len(decode_jsonlines_response(resp.content)) == len(batch)
