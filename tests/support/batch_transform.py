"""A Batch Transform job run on this machine, written from the SageMaker documentation, not from our code.

Sources (SageMaker Developer Guide and API Reference): "Batch transform for inference", "Associate prediction results
with input records" (InputFilter / JoinSource / OutputFilter and the JSONPath operators they support), and the
CreateTransformJob, TransformInput, TransformOutput and DataProcessing API pages. What it does with a request:

- reads every object under TransformInput's S3 prefix (S3DataType S3Prefix) and splits it into records by line
  (SplitType Line; a final newline ends the last record);
- applies InputFilter to each JSON record (default "$": the record as it is) and sends the records to the model's
  containers over HTTP: one per request (BatchStrategy SingleRecord) or as many lines as fit MaxPayloadInMB
  (MultiRecord), with ContentType and TransformOutput.Accept;
- splits the answer into one line per record (it refuses a different count), joins each to its input record when
  JoinSource is Input (a JSON object record gets the answer under "SageMakerOutput"), applies OutputFilter, and
  writes ``<S3OutputPath>/<input key relative to the prefix>.out``, one line per record (AssembleWith Line);
- answers as DescribeTransformJob does; a container error fails the job (States.TaskFailed with the description).

Assumption, not documented: what a filter that selects a scalar (a string, a number) sends; the stand-in refuses
such a filter rather than guess.
"""

from __future__ import annotations

import json
import re

from tests.support.endpoint import Endpoint, InvocationError
from tests.support.local_sfn import TaskFailed

MIB = 1024 * 1024
_JSON_TYPES = ("application/json", "application/jsonlines")


class TransformRefused(ValueError):
    """A request this stand-in cannot run as documented (named in the job's FailureReason)."""


# ---- the JSONPath subset the guide lists: $, .<name>, ['<name>',...], [<n>,...], [<start>:<end>] ----

_STEP = re.compile(r"\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<bracket>[^\]]*)\]")


def select(expression: str, value):
    """``value`` filtered by ``expression``; several names make an object of those members (as the guide's
    ``$['id','SageMakerOutput']`` example shows), several indexes or a slice make an array."""
    if not expression.startswith("$"):
        raise TransformRefused(f"JSONPath {expression!r} does not start with $")
    rest, position = expression[1:], 0
    while position < len(rest):
        step = _STEP.match(rest, position)
        if step is None:
            raise TransformRefused(f"JSONPath {expression!r}: operator at {rest[position:]!r} is not in the subset")
        position = step.end()
        if step.group("name"):
            value = _member(value, step.group("name"), expression)
            continue
        items = [item.strip() for item in step.group("bracket").split(",")]
        if all(item[:1] in "'\"" for item in items):
            names = [item[1:-1] for item in items]
            value = _member(value, names[0], expression) if len(names) == 1 else {n: value[n] for n in names}
        else:
            value = _indexes(value, items, expression)
    return value


def _member(value, name: str, expression: str):
    if not isinstance(value, dict) or name not in value:
        raise TransformRefused(f"JSONPath {expression!r}: no member {name!r}")
    return value[name]


def _indexes(value, items: list[str], expression: str):
    if not isinstance(value, list):
        raise TransformRefused(f"JSONPath {expression!r} indexes a value that is not an array")
    picked = []
    for item in items:
        if ":" in item:
            start, _, end = item.partition(":")
            picked.extend(value[int(start) if start else None : int(end) if end else None])
        else:
            picked.append(value[int(item)])
    return picked


# ---- the job ----


class BatchTransform:
    """Bound to ``sagemaker:createTransformJob``: runs the job against ``endpoints[ModelName]``."""

    def __init__(self, s3, endpoints: dict[str, Endpoint]):
        self.s3, self.endpoints = s3, endpoints
        self.requests: list[bytes] = []  # every body sent to the model, in order (tests read them)

    def __call__(self, params: dict) -> dict:
        try:
            self.run(params)
        except (TransformRefused, InvocationError) as exc:
            raise TaskFailed("States.TaskFailed", json.dumps(describe(params, "Failed", str(exc)))) from None
        return describe(params, "Completed")

    def run(self, params: dict) -> None:
        source = params["TransformInput"]["DataSource"]["S3DataSource"]
        if source["S3DataType"] != "S3Prefix":
            raise TransformRefused(f"S3DataType {source['S3DataType']} is not modelled")
        if params["TransformInput"].get("SplitType") != "Line":
            raise TransformRefused("only SplitType Line is modelled")
        strategy = params.get("BatchStrategy")
        if strategy not in ("SingleRecord", "MultiRecord"):
            raise TransformRefused("BatchStrategy must be named (SingleRecord or MultiRecord)")
        content_type = params["TransformInput"].get("ContentType", "")
        accept = params["TransformOutput"].get("Accept", content_type)
        processing = params.get("DataProcessing", {})
        endpoint = self.endpoints[params["ModelName"]]
        limit = params.get("MaxPayloadInMB", 6) * MIB
        bucket, prefix = _split(source["S3Uri"])
        out_bucket, out_prefix = _split(params["TransformOutput"]["S3OutputPath"].rstrip("/") + "/")
        for key in self._keys(bucket, prefix):
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            records = body.split(b"\n")
            if records and records[-1] == b"":
                records.pop()
            sent = [self._filtered(r, processing.get("InputFilter", "$"), content_type) for r in records]
            answers: list[bytes] = []
            for batch in _batches(sent, strategy, limit):
                request = b"\n".join(batch) + b"\n"
                self.requests.append(request)
                answer, _ = endpoint.invoke(request, content_type, accept)
                lines = answer.decode("utf-8").splitlines()
                if len(lines) != len(batch):
                    raise TransformRefused(f"the model answered {len(lines)} lines for {len(batch)} records")
                answers.extend(line.encode() for line in lines)
            output = [self._joined(r, a, processing, content_type) for r, a in zip(records, answers, strict=True)]
            name = key[len(prefix) :] if key != prefix else key.rsplit("/", 1)[-1]
            self.s3.put_object(
                Bucket=out_bucket, Key=out_prefix + name + ".out", Body=b"".join(o + b"\n" for o in output)
            )

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    @staticmethod
    def _filtered(record: bytes, expression: str, content_type: str) -> bytes:
        if expression == "$":
            return record
        if content_type not in _JSON_TYPES:
            raise TransformRefused(f"InputFilter on {content_type} records is not modelled")
        selected = select(expression, json.loads(record))
        if not isinstance(selected, dict | list):
            raise TransformRefused(
                f"InputFilter {expression!r} selects a {type(selected).__name__}: what Batch Transform sends the "
                "container for a scalar is not documented"
            )
        return json.dumps(selected).encode()

    @staticmethod
    def _joined(record: bytes, answer: bytes, processing: dict, content_type: str) -> bytes:
        if processing.get("JoinSource", "None") != "Input":
            joined = json.loads(answer)
        else:
            if content_type not in _JSON_TYPES:
                raise TransformRefused(f"JoinSource Input on {content_type} records is not modelled")
            original = json.loads(record)
            if not isinstance(original, dict):
                raise TransformRefused("JoinSource Input with a record that is not a JSON object is not modelled")
            joined = {**original, "SageMakerOutput": json.loads(answer)}
        return json.dumps(select(processing.get("OutputFilter", "$"), joined)).encode()


def _batches(records: list[bytes], strategy: str, limit: int):
    if strategy == "SingleRecord":
        for record in records:
            if len(record) > limit:
                raise TransformRefused(f"a record of {len(record)} bytes is over MaxPayloadInMB")
            yield [record]
        return
    batch, size = [], 0
    for record in records:
        if len(record) + 1 > limit:
            raise TransformRefused(f"a record of {len(record)} bytes is over MaxPayloadInMB")
        if batch and size + len(record) + 1 > limit:
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record) + 1
    if batch:
        yield batch


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def describe(params: dict, status: str, reason: str | None = None) -> dict:
    """A DescribeTransformJob response for the job ``params`` created (the members the API model requires)."""
    name = params["TransformJobName"]
    answer = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:eu-west-1:111111111111:transform-job/{name}",
        "TransformJobStatus": status,
        "ModelName": params["ModelName"],
        "TransformInput": params["TransformInput"],
        "TransformOutput": params["TransformOutput"],
        "TransformResources": params["TransformResources"],
        "CreationTime": "2026-11-24T00:00:00Z",
    }
    if reason:
        answer["FailureReason"] = reason[:1024]
    return answer
