"""Issue 21's shards: a builtin stage's prepare writes the frozen dataset as N contiguous shards (real S3 API, moto
server on 127.0.0.1); a clarify stage's prepare is unchanged; median is refused where N parts cannot merge it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from explain_workflow import aws
from explain_workflow.contract import SETTINGS_ENV, Limits, ProcessingSettings, WorkflowSettings
from explain_workflow.dataset import read_frozen
from explain_workflow.errors import InputValidationError
from explain_workflow.identity import run_identity
from explain_workflow.request import RunRequest
from explain_workflow.runs import shard_bounds
from tests.support.data import LABELS, TEXTS, csv_bytes
from tests.support.lambda_context import Context
from tests.support.s3 import all_keys, handlers_s3, upload

TEN = [f"{text} number {i}, with a comma and a\nnewline" for i, text in enumerate(TEXTS * 4, start=1)][:10]


def settings(engine: str = "builtin", shards: int = 2, **more) -> WorkflowSettings:
    return WorkflowSettings(
        results_bucket="results",
        labels=LABELS,
        model_name="text-model",
        limits=Limits(max_rows=50),
        processing=ProcessingSettings(instance_count=shards),
        engine=engine,
        **more,
    )


@pytest.fixture
def s3(moto_url, monkeypatch):
    def configure(stage: WorkflowSettings):
        monkeypatch.setenv(SETTINGS_ENV, stage.model_dump_json())
        aws.settings.cache_clear()
        aws.storage.cache_clear()

    with handlers_s3(moto_url, monkeypatch) as client:
        yield client, configure


@pytest.mark.parametrize(
    ("rows", "shards", "expected"),
    [(10, 1, [(0, 10)]), (10, 3, [(0, 4), (4, 7), (7, 10)]), (2, 4, [(0, 1), (1, 2)]), (4, 2, [(0, 2), (2, 4)])],
)
def test_shards_are_contiguous_near_equal_blocks_and_empty_blocks_are_not_listed(rows, shards, expected):
    assert shard_bounds(rows, shards) == expected


def test_every_split_covers_every_row_once_in_order():
    for rows in range(0, 30):
        for shards in range(1, 8):
            bounds = shard_bounds(rows, shards)
            assert [i for start, stop in bounds for i in range(start, stop)] == list(range(rows))
            sizes = [stop - start for start, stop in bounds]
            assert not sizes or max(sizes) - min(sizes) <= 1


def frozen(client, key: str) -> bytes:
    return client.get_object(Bucket="results", Key=key)["Body"].read()


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 12])
def test_a_builtin_stage_writes_the_frozen_dataset_as_its_shards(s3, shards):
    """The shards, concatenated in order, are byte for byte the dataset.csv the same request gets on a clarify stage."""
    from prepare.handler import handler as prepare

    client, configure = s3
    event = upload(client, "incoming/ten.csv", csv_bytes(TEN))
    configure(settings("clarify", shards))
    clarify = prepare(event, Context())
    whole = frozen(client, f"runs/{clarify['run_id']}/input/dataset.csv")

    configure(settings("builtin", shards, model_identity={"labels": LABELS, "engine_test": shards}))
    built = prepare(event, Context())
    run = f"runs/{built['run_id']}/"
    inputs = sorted(k for k in all_keys(client, "results") if k.startswith(run + "input/"))
    expected = min(shards, len(TEN))  # an empty block is not written
    assert inputs == [f"{run}input/dataset.part-{i:05d}.csv" for i in range(expected)]
    assert b"".join(frozen(client, key) for key in inputs) == whole
    sizes = []
    for key in inputs:
        with aws.storage().open("results", key) as part:
            sizes.append(len(list(read_frozen(part))))
    assert sizes == [stop - start for start, stop in shard_bounds(len(TEN), shards)]
    assert built["rows"] == len(TEN)
    assert built["dataset_s3_uri"] == f"s3://results/{run}input/"


def test_a_new_attempt_of_a_builtin_run_leaves_no_shard_of_the_failed_one(s3):
    from prepare.handler import handler as prepare

    client, configure = s3
    configure(settings("builtin", 3))
    event = upload(client, "incoming/again.csv", csv_bytes(TEN))
    first = prepare(event, Context())
    run = f"runs/{first['run_id']}/"
    client.put_object(Bucket="results", Key=run + "input/dataset.part-00007.csv", Body=b'"99","stale"\n')
    client.put_object(Bucket="results", Key=run + "manifest.json", Body=b'{"status": "FAILED", "attempt": 1}')
    second = prepare(event, Context())
    assert second["attempt"] == 2
    inputs = sorted(k for k in all_keys(client, "results") if k.startswith(run + "input/"))
    assert inputs == [f"{run}input/dataset.part-{i:05d}.csv" for i in range(3)]


def test_median_cannot_be_merged_from_several_builtin_shards():
    with pytest.raises(ValidationError, match="median"):
        settings("builtin", 2, defaults={"agg_method": "median"})
    settings("builtin", 1, defaults={"agg_method": "median"})  # one instance: nothing to merge
    settings("clarify", 2, defaults={"agg_method": "median"})  # Clarify's own job aggregates
    request = RunRequest.from_event({"bucket": "in", "key": "incoming/a.csv", "overrides": {"agg_method": "median"}})
    with pytest.raises(InputValidationError, match=r"overrides\.agg_method 'median' cannot be merged exactly"):
        run_identity(request, settings("builtin", 2))
    assert run_identity(request, settings("builtin", 1)).options.agg_method == "median"


def test_a_request_for_median_on_a_sharded_builtin_stage_fails_visibly_before_any_shard(s3):
    from prepare.handler import handler as prepare

    client, configure = s3
    configure(settings("builtin", 2))
    event = {**upload(client, "incoming/median.csv", csv_bytes(TEN)), "overrides": {"agg_method": "median"}}
    with pytest.raises(InputValidationError):
        prepare(event, Context())
    keys = all_keys(client, "results")
    assert [k for k in keys if k.endswith("manifest.json")]
    assert not [k for k in keys if "/input/" in k]


def test_a_clarify_stages_settings_serialize_as_before_engines_existed():
    """No `engine` key in a clarify stage's WORKFLOW_SETTINGS: its functions' environment is unchanged."""
    assert "engine" not in settings("clarify").model_dump(mode="json")
    assert settings("builtin").model_dump(mode="json")["engine"] == "builtin"
    assert WorkflowSettings.model_validate_json(settings("builtin").model_dump_json()).engine == "builtin"
    assert WorkflowSettings.model_validate_json(settings("clarify").model_dump_json()).engine == "clarify"
