"""A SageMaker Clarify text-explainability processing job run on this machine, written from AWS's documentation.

Sources: SageMaker Developer Guide "Configure the analysis" (analysis_config.json: headers, joinsource_name_or_index,
predictor content_type / accept_type / probability / label_headers, methods.shap baseline / num_samples / agg_method /
text_config), "Explainability reports for NLP models" (units replaced by the baseline), "Analysis results"
(analysis.json and explanations_shap/out.jsonl), the text-explainability example notebook's printed out.jsonl record,
and the job logs quoted in ../shared/CLARIFY-FACTS.md (requests are headerless CSV with text fields quoted).

What it does: reads the config and every CSV object under the dataset input (no header row: the config names the
headers), explains each record's text by Kernel SHAP (the shap library's own KernelExplainer; the all-masked text is
the background) with ``num_samples`` samples, calls the real model for every sample as Clarify calls an endpoint
(``text/csv``, one quoted text per line, RFC 4180, batches of at most ``batch_rows`` lines), applies the config's
``probability`` JMESPath to each answer line, and writes, with its own writer, out.jsonl (one record per row, input
order, ``join_source_value`` from the join column), analysis.json and baseline.csv. With InstanceCount > 1 it writes
the local values as Spark does (part-0000i-<uuid>-c000.json, a _SUCCESS marker and .crc checksums).

Assumptions, not documented: the token rule (words and punctuation marks, as spaCy-like tokenizers split them), the
sentence rule (ends at . ! ?), the per-label expected_value (the mean of the all-masked predictions), the global
value (mean over records of the sum of |phi| for mean_abs), global_top_shap_text (per word, mean |phi| over its
occurrences, case kept, top max_top_tokens), and the names of Spark's parts.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid

import jmespath
import numpy as np
import shap

from tests.support.endpoint import Endpoint, InvocationError
from tests.support.local_sfn import TaskFailed

_UNITS = {
    "token": re.compile(r"\w+|[^\w\s]"),
    "sentence": re.compile(r"[^\s.!?][^.!?]*[.!?]*"),
    "paragraph": re.compile(r"\S(?:.|\n(?!\s*\n))*"),
}
_WORD = re.compile(r"\w+")


def units(text: str, granularity: str) -> list[tuple[str, int]]:
    """(unit, start character) of each unit of ``text``."""
    return [(m.group().rstrip(), m.start()) for m in _UNITS[granularity].finditer(text)]


def masked(text: str, spans: list[tuple[str, int]], keep: np.ndarray, baseline: str) -> str:
    """``text`` with every unit not kept replaced by the baseline string; everything between units stays."""
    pieces, at = [], 0
    for (unit, start), kept in zip(spans, keep, strict=True):
        pieces.append(text[at:start])
        pieces.append(unit if kept else baseline)
        at = start + len(unit)
    pieces.append(text[at:])
    return "".join(pieces)


def csv_body(texts: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([t] for t in texts)
    return buffer.getvalue().encode("utf-8")


class ClarifyJob:
    """Bound to ``sagemaker:createProcessingJob`` (Clarify's image): runs the analysis against the model."""

    def __init__(self, s3, endpoints: dict[str, Endpoint], batch_rows: int = 500):
        self.s3, self.endpoints, self.batch_rows = s3, endpoints, batch_rows
        self.requests: list[bytes] = []

    def __call__(self, params: dict) -> dict:
        try:
            self.run(params)
        except (InvocationError, ValueError) as exc:
            raise TaskFailed(
                "States.TaskFailed", json.dumps(describe(params, "Failed", f"ClientError: {exc}"))
            ) from None
        return describe(params, "Completed")

    def run(self, params: dict) -> None:
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in params["ProcessingInputs"]}
        (output,) = params["ProcessingOutputConfig"]["Outputs"]
        config = json.loads(self._read_all(inputs["analysis_config"], suffix="analysis_config.json"))
        headers, join = config["headers"], config.get("joinsource_name_or_index")
        rows = list(csv.reader(io.StringIO(self._read_all(inputs["dataset"]).decode("utf-8"), newline="")))
        features = [h for h in headers if h != join]
        if len(features) != 1:
            raise ValueError(f"one text feature is modelled, the config has {features}")
        column = headers.index(features[0])
        shap_config, predictor = config["methods"]["shap"], config["predictor"]
        endpoint = self.endpoints[predictor.get("model_name") or predictor["endpoint_name"]]
        text_config = shap_config["text_config"]
        baseline = shap_config["baseline"][0][0]
        labels = predictor.get("label_headers")
        records, expected = [], []
        for row in rows:
            text = row[column]
            spans = units(text, text_config["granularity"])
            phi, base = self._explain(text, spans, baseline, shap_config, predictor, endpoint)
            expected.append(base)
            join_value = row[headers.index(join)] if join is not None else None
            records.append((features[0], spans, phi, _typed(join_value)))
        labels = labels or [f"label{i}" for i in range(len(expected[0]))]
        out = output["S3Output"]["S3Uri"].rstrip("/") + "/"
        lines = [local_line(*r) for r in records]
        count = params["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        self._write_local(out, lines, count)
        self._put(out + "explanations_shap/baseline.csv", csv_body([baseline]))
        top = text_config.get("max_top_tokens", 50)
        document = analysis(labels, records, expected, shap_config.get("agg_method", "mean_abs"), top)
        self._put(out + "analysis.json", json.dumps(document).encode())

    def _explain(self, text, spans, baseline, shap_config, predictor, endpoint):
        def model(masks: np.ndarray) -> np.ndarray:
            texts = [masked(text, spans, m.astype(bool), baseline) for m in masks]
            return np.array(self._predict(texts, predictor, endpoint))

        m = len(spans)
        if m == 0:
            raise ValueError("a record with no units is not modelled")
        explainer = shap.KernelExplainer(model, np.zeros((1, m)))
        values = explainer.shap_values(
            np.ones((1, m)), nsamples=min(shap_config["num_samples"], max(2**m - 2, 1)), silent=True
        )
        values = np.asarray(values)
        if values.ndim == 3 and values.shape[0] == 1:  # (1, units, labels)
            values = values[0]
        elif values.ndim == 3:  # one (1, units) array per label
            values = values[:, 0, :].T
        return values.tolist(), [float(v) for v in np.atleast_1d(explainer.expected_value)]

    def _predict(self, texts: list[str], predictor: dict, endpoint: Endpoint) -> list[list[float]]:
        found = []
        for start in range(0, len(texts), self.batch_rows):
            body = csv_body(texts[start : start + self.batch_rows])
            self.requests.append(body)
            answer, _ = endpoint.invoke(body, predictor["content_type"], predictor["accept_type"])
            lines = answer.decode("utf-8").splitlines()
            if len(lines) != len(texts[start : start + self.batch_rows]):
                raise ValueError(
                    f"the model answered {len(lines)} lines for {len(texts[start : start + self.batch_rows])}"
                )
            found.extend(
                [float(p) for p in jmespath.search(predictor["probability"], json.loads(line))] for line in lines
            )
        return found

    def _read_all(self, uri: str, suffix: str = "") -> bytes:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(suffix))
        return b"".join(self.s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys)

    def _put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _write_local(self, out: str, lines: list[str], instances: int) -> None:
        if instances == 1:
            self._put(out + "explanations_shap/out.jsonl", "".join(lines).encode())
            return
        job = uuid.uuid4()
        size = -(-len(lines) // instances)
        for i in range(instances):
            name = f"part-{i:05d}-{job}-c000.json"
            self._put(out + f"explanations_shap/{name}", "".join(lines[i * size : (i + 1) * size]).encode())
            self._put(out + f"explanations_shap/.{name}.crc", b"crc")
        self._put(out + "explanations_shap/_SUCCESS", b"")
        self._put(out + "explanations_shap/._SUCCESS.crc", b"crc")


def _typed(value: str | None):
    """A join value as a CSV reader that infers types reads it (digits are a number)."""
    return int(value) if value is not None and value.isdigit() else value


def local_line(feature: str, spans, phi, join_value) -> str:
    """One out.jsonl record in the published layout (the notebook's printed record, plus join_source_value)."""
    record = {
        "explanations": [
            {
                "attributions": [
                    {"attribution": values, "description": {"partial_text": unit, "start_idx": start}}
                    for (unit, start), values in zip(spans, phi, strict=True)
                ],
                "data_type": "free_text",
                "feature_name": feature,
            }
        ]
    }
    if join_value is not None:
        record["join_source_value"] = join_value
    return json.dumps(record) + "\n"


def analysis(labels, records, expected, agg_method: str, max_top_tokens: int) -> dict:
    """analysis.json's kernel_shap section, per label (the "Analysis results" page's layout)."""
    k = len(labels)
    per_record = []
    words: dict[str, list[list[float]]] = {}
    for _, spans, phi, _ in records:
        values = np.abs(np.array(phi)) if agg_method == "mean_abs" else np.square(np.array(phi))
        per_record.append(values.sum(axis=0))
        for (unit, _), value in zip(spans, values, strict=True):
            for word in _WORD.findall(unit):
                words.setdefault(word, []).append(list(value))
    global_values = np.mean(per_record, axis=0)
    base = np.mean(expected, axis=0)
    section = {}
    for j, label in enumerate(labels[:k]):
        means = {w: float(np.mean([v[j] for v in vs])) for w, vs in words.items()}
        top = dict(sorted(means.items(), key=lambda item: -item[1])[:max_top_tokens])
        section[label] = {
            "global_shap_values": {records[0][0]: float(global_values[j])},
            "expected_value": float(base[j]),
            "global_top_shap_text": {records[0][0]: top},
        }
    return {"version": "1.0", "explanations": {"kernel_shap": section}}


def describe(params: dict, status: str, reason: str | None = None, exit_message: str | None = None) -> dict:
    """A DescribeProcessingJob response for the job ``params`` created (JSON-serialisable): what it was created with
    (its Environment and NetworkConfig where it was given them), its status, its FailureReason and ExitMessage if
    any."""
    name = params["ProcessingJobName"]
    answer = {
        "ProcessingJobName": name,
        "ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:111111111111:processing-job/{name}",
        "ProcessingJobStatus": status,
        "ProcessingInputs": params["ProcessingInputs"],
        "ProcessingOutputConfig": params["ProcessingOutputConfig"],
        "ProcessingResources": params["ProcessingResources"],
        "StoppingCondition": params["StoppingCondition"],
        "AppSpecification": params["AppSpecification"],
        "RoleArn": params["RoleArn"],
        "CreationTime": "2026-11-24T00:00:00Z",
    }
    answer.update({member: params[member] for member in ("Environment", "NetworkConfig") if member in params})
    if reason:
        answer["FailureReason"] = reason[:1024]
    if exit_message:
        answer["ExitMessage"] = exit_message
    return answer
