"""The ``pipeline`` hosting mode, run locally: pre-adapter -> our server speaking BlazingText's API -> post-adapter,
over HTTP.

SageMaker's serial inference pipeline sends each container's answer to the next with that answer's
content type; ``pipeline`` does the same on 127.0.0.1. The result must be byte-identical to the ``byoc`` mode's
(our own container answering Clarify directly) for the same model and texts.
"""

from __future__ import annotations

import json

import pytest
import requests

from fasttext_server.codec import encode_csv_batch
from tests.support.wire import clarify_batch
from textexplain.serving import ServeError, ServeProcess


@pytest.fixture(scope="module")
def chain(trained_model, served_labels):
    def serve(mode: str) -> ServeProcess:
        return ServeProcess(trained_model.model_dir, served_labels, workers=1, extra_env={"SERVE_MODE": mode}).start()

    servers = {mode: serve(mode) for mode in ("pre-adapter", "blazingtext", "post-adapter", "model")}
    yield {mode: s.url for mode, s in servers.items()}
    for s in servers.values():
        s.stop()


def post(url: str, body: bytes, content_type: str, accept: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    return requests.post(url + "/invocations", data=body, headers=headers, timeout=30)


def pipeline(chain: dict, body: bytes, content_type: str = "text/csv") -> requests.Response:
    answer = post(chain["pre-adapter"], body, content_type)
    for mode in ("blazingtext", "post-adapter"):
        if answer.status_code != 200:
            return answer
        answer = post(chain[mode], answer.content, answer.headers["Content-Type"], "application/jsonlines")
    return answer


def test_the_pipeline_answers_exactly_as_our_container(chain):
    text = "The river Aare flows, quietly, into a lake near Zürich; the valley is famous."
    batch = [*clarify_batch(text, 500), "", "<UNK>", 'quote "inside"', "two\nlines"]
    body = encode_csv_batch(batch)
    chained = pipeline(chain, body)
    direct = post(chain["model"], body, "text/csv")
    assert chained.status_code == 200
    assert chained.headers["Content-Type"] == "application/jsonlines"
    assert chained.content == direct.content
    assert len(chained.content.splitlines()) == len(batch)


def test_pre_adapter_asks_blazingtext_for_every_label(chain, served_labels):
    answer = post(chain["pre-adapter"], b'"The River."\n"<UNK> film"\n', "text/csv")
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.content) == {
        "instances": ["the river .", "<UNK> film"],
        "configuration": {"k": len(served_labels)},
    }


def test_blazingtext_mode_speaks_blazingtexts_format(chain):
    body = json.dumps({"instances": ["a river and a lake", "the striker"], "configuration": {"k": 2}}).encode()
    answer = json.loads(post(chain["blazingtext"], body, "application/json").content)
    assert [a["label"][0] for a in answer] == ["__label__NaturalPlace", "__label__Athlete"]
    assert all(len(a["label"]) == 2 and a["prob"][0] >= a["prob"][1] for a in answer)


UNKNOWN_LABEL = b'[{"label": ["__label__Dinosaur"], "prob": [1.0]}]'


@pytest.mark.parametrize(
    ("mode", "body", "content_type", "status", "error"),
    [
        ("pre-adapter", b'"ok"\n"two","columns"\n', "text/csv", 400, "too_many_columns"),
        ("pre-adapter", b'"caf\xe9"\n', "text/csv", 400, "invalid_encoding"),
        ("pre-adapter", b"x", "text/plain", 415, "unsupported_content_type"),
        ("blazingtext", b'"a"\n', "text/csv", 415, "unsupported_content_type"),
        (
            "post-adapter",
            b'[{"label": ["__label__Dinosaur"], "prob": [1.0]}]',
            "application/json",
            400,
            "unknown_label",
        ),
        ("post-adapter", b'[{"label": ["__label__Film"]}]', "application/json", 400, "malformed_json"),
        ("post-adapter", b"{not json", "application/json", 400, "malformed_json"),
    ],
)
def test_adapters_reject_bad_input_clearly_and_keep_serving(chain, mode, body, content_type, status, error):
    answer = post(chain[mode], body, content_type)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert requests.get(chain[mode] + "/ping", timeout=5).status_code == 200


def test_adapters_need_labels(trained_model):
    with (
        pytest.raises(ServeError, match="needs LABELS"),
        ServeProcess(trained_model.model_dir, None, workers=1, extra_env={"SERVE_MODE": "post-adapter"}),
    ):
        pass
