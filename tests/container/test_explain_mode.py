"""SERVE_MODE=explain over real HTTP on 127.0.0.1, with the fastText model trained in the session: the answer's
attributions are the explainer's own (recomputed in this process), the prediction is fastText's own, and every
bound and bad request has our JSON error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from fasttext_server.codec import encode_csv_batch
from fasttext_server.model import Classifier
from textexplain.explainer.explain import ShapOptions, explain_records
from textexplain.explainer.scorer import InProcessScorer
from textexplain.serving import ServeError, ServeProcess

SETTINGS = {"EXPLAIN_NUM_SAMPLES": "64", "EXPLAIN_MAX_RECORDS": "3", "EXPLAIN_SEED": "7"}
TEXTS = ["The river Aare flows into a lake near the glacier.", "the striker won a gold medal", '"quoted", and\nlines']


@pytest.fixture(scope="module")
def explain_server(trained_model, served_labels):
    env = {"SERVE_MODE": "explain", "MAX_TEXT_CHARS": "400", **SETTINGS}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as process:
        yield process


def post(url, body: bytes, headers=None):
    headers = headers or {"Content-Type": "text/csv", "Accept": "application/json"}
    return requests.post(url + "/invocations", data=body, headers=headers, timeout=60)


def expected(trained_model, labels, texts):
    options = ShapOptions(num_samples=64, seed=7)
    scorer = InProcessScorer(Classifier(trained_model.model, labels))
    rows = list(enumerate(texts))
    return list(explain_records(rows, scorer.score, options, 1, False, scorer.score_normalized))


def test_the_answer_is_clarifys_online_shape_with_the_explainers_attributions(
    explain_server, trained_model, served_labels
):
    resp = post(explain_server.url, encode_csv_batch(TEXTS))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    answer = resp.json()
    assert answer["version"] == "1.0"
    assert answer["label_headers"] == served_labels
    assert answer["predictions"]["content_type"] == "application/jsonlines"
    records = [json.loads(line) for line in answer["predictions"]["data"].splitlines()]
    own = Classifier(trained_model.model, served_labels).predict(TEXTS)
    np.testing.assert_array_equal(np.array([r["prob"] for r in records], dtype=np.float32), own)
    assert [r["label"] for r in records] == [served_labels[i] for i in own.argmax(axis=1)]

    explained = answer["explanations"]["kernel_shap"]
    assert len(explained) == len(TEXTS)
    for features, result in zip(explained, expected(trained_model, served_labels, TEXTS), strict=True):
        (feature,) = features
        assert feature["feature_type"] == "text"
        units = feature["attributions"]
        assert [u["description"] for u in units] == [
            {"partial_text": s.text, "start_idx": s.start} for s in result.units
        ]
        # the same float64 values (JSON carries each as its shortest round-tripping decimal)
        np.testing.assert_array_equal(np.array([u["attribution"] for u in units]), result.attributions)


def test_jsonlines_requests_and_a_records_explanation_does_not_depend_on_its_neighbours_text(
    explain_server, trained_model, served_labels
):
    body = b'{"text": "the striker won a gold medal"}\n'
    resp = post(explain_server.url, body, {"Content-Type": "application/jsonlines"})
    assert resp.status_code == 200, resp.text
    alone = resp.json()["explanations"]["kernel_shap"][0][0]["attributions"]
    (result,) = expected(trained_model, served_labels, ["the striker won a gold medal"])
    np.testing.assert_array_equal(np.array([u["attribution"] for u in alone]), result.attributions)


@pytest.mark.parametrize(
    ("body", "headers", "status", "error", "says"),
    [
        (encode_csv_batch(["a", "b", "c", "d"]), None, 413, "too_many_records", "EXPLAIN_MAX_RECORDS=3"),
        (encode_csv_batch(["word " * 100]), None, 413, "text_too_long", "MAX_TEXT_CHARS"),
        (b"", None, 400, "empty_body", "empty"),
        (b'"ok"\n"bad"quote\n', None, 400, "malformed_csv", ""),
        (b"x", {"Content-Type": "text/plain"}, 415, "unsupported_content_type", "text/csv"),
        (b"x", {"Content-Type": "text/csv", "Accept": "text/html"}, 406, "unsupported_accept", "application/json"),
    ],
)
def test_bounds_and_bad_requests_get_json_errors_and_the_server_keeps_serving(
    explain_server, body, headers, status, error, says
):
    resp = post(explain_server.url, body, headers)
    assert resp.status_code == status
    assert resp.json()["error"] == error
    assert says in resp.json()["detail"]
    assert post(explain_server.url, encode_csv_batch(["a lake"])).status_code == 200


def test_a_payload_over_max_payload_bytes_is_413_before_any_work(trained_model, served_labels):
    env = {"SERVE_MODE": "explain", "MAX_PAYLOAD_BYTES": "1000"}
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as process:
        resp = post(process.url, encode_csv_batch(["x" * 2000]))
        assert resp.status_code == 413
        assert resp.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"EXPLAIN_NUM_SAMPLES": "2001"}, "EXPLAIN_NUM_SAMPLES=2001 is outside 1..2000"),
        ({"EXPLAIN_MAX_RECORDS": "65"}, "EXPLAIN_MAX_RECORDS=65 is outside 1..64"),
        ({"EXPLAIN_NUM_SAMPLES": "many"}, "EXPLAIN_NUM_SAMPLES='many' is not a whole number"),
        ({"EXPLAIN_GRANULARITY": "letter"}, "EXPLAIN_* settings refused: granularity"),
        ({"EXPLAIN_LANGUAGE": "klingon"}, "EXPLAIN_* settings refused: language"),
    ],
)
def test_a_budget_past_its_ceiling_or_a_bad_option_stops_the_server_at_start(trained_model, env, says):
    with pytest.raises(ServeError, match="exited with code 2") as err:
        ServeProcess(trained_model.model_dir, None, workers=1, extra_env={"SERVE_MODE": "explain", **env}).start()
    assert says in str(err.value)


def test_the_request_deadline_bounds_an_explanation(trained_model, served_labels):
    # a 4-second worker timeout gives a 2-second request budget, and 2 seconds of margin for the record in progress
    # when the budget runs out (about 0.2 s each here, a few times that on a loaded machine); 64 of them take far
    # longer than the budget, so the deadline, not the worker timeout, answers
    env = {"SERVE_MODE": "explain", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "4", "EXPLAIN_NUM_SAMPLES": "2000"}
    env["EXPLAIN_MAX_RECORDS"] = "64"
    with ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env=env) as process:
        long = " ".join(["river lake glacier striker medal novel film"] * 60)
        resp = post(process.url, encode_csv_batch([long] * 64))
        assert resp.status_code == 503
        assert resp.json()["error"] == "deadline_exceeded"
        assert post(process.url, encode_csv_batch(["a lake"])).status_code == 200
