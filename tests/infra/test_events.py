"""Event triggers: the synthesized rules' patterns matched by a real EventBridge implementation (moto's,
served on 127.0.0.1), the bus policy, and forwarding of results."""

from __future__ import annotations

import json

import boto3
import pytest

from infra.config import load_stage
from tests.support.cfn import resources
from tests.support.s3 import CREDENTIALS


@pytest.fixture
def eventbridge(moto_url):
    make = lambda service: boto3.client(  # noqa: E731
        service, endpoint_url=moto_url, region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key="testing",
    )  # fmt: skip
    return make("events"), make("sqs")


def _concrete(value):
    """A template value with each {"Ref": X} written as "ref:X"."""
    if isinstance(value, dict):
        return f"ref:{value['Ref']}" if set(value) == {"Ref"} else {k: _concrete(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_concrete(v) for v in value]
    return value


def patterns(template: dict) -> dict[str, dict]:
    """description -> the rule's event pattern."""
    rules = resources(template, "AWS::Events::Rule").values()
    return {r["Properties"]["Description"]: _concrete(r["Properties"]["EventPattern"]) for r in rules}


def route(eventbridge, pattern: dict, events: list[dict]) -> list[bool]:
    """Which of ``events`` a rule with ``pattern`` delivers, through moto's EventBridge."""
    client, sqs = eventbridge
    bus = f"bus-{abs(hash(json.dumps(pattern))) % 10**8}"
    client.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client.put_rule(Name="r", EventBusName=bus, EventPattern=json.dumps(pattern))
    client.put_targets(Rule="r", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    delivered = []
    for event in events:
        client.put_events(Entries=[{**event, "EventBusName": bus}])
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        for message in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        delivered.append(bool(got))
    return delivered


def s3_created(bucket: str, key: str) -> dict:
    detail = {"bucket": {"name": bucket}, "object": {"key": key, "etag": "abc"}}
    return {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}


def test_upload_rule_matches_only_csvs_under_incoming_of_the_input_bucket(synthesized, eventbridge):
    template = synthesized.templates["dev"]
    pattern = patterns(template)["A CSV under incoming/ starts an explanation run"]
    (bucket_ref,) = pattern["detail"]["bucket"]["name"]
    pattern["detail"]["bucket"]["name"] = ["input-bucket"]
    assert bucket_ref.startswith("ref:StorageInput")
    events = [
        s3_created("input-bucket", "incoming/texts.csv"),
        s3_created("input-bucket", "incoming/texts.CSV"),
        s3_created("input-bucket", "incoming/deep/texts.Csv"),
        s3_created("input-bucket", "other/texts.csv"),
        s3_created("input-bucket", "incoming/texts.txt"),
        s3_created("someone-else", "incoming/texts.csv"),
        {"Source": "aws.s3", "DetailType": "Object Deleted",
         "Detail": json.dumps({"bucket": {"name": "input-bucket"}, "object": {"key": "incoming/a.csv"}})},
    ]  # fmt: skip
    assert route(eventbridge, pattern, events) == [True, True, True, False, False, False, False]


def test_request_rule_matches_explanation_requested_only(synthesized, eventbridge):
    pattern = patterns(synthesized.templates["prod"])["An allowed account asks for an explanation run"]
    good = {"Source": "partner.app", "DetailType": "Explanation Requested",
            "Detail": json.dumps({"bucket": "b", "key": "incoming/x.csv"})}  # fmt: skip
    other = {**good, "DetailType": "Explanation Succeeded"}
    assert route(eventbridge, pattern, [good, other]) == [True, False]


def test_bus_admits_only_the_listed_accounts_and_the_organisation(synthesized):
    config = load_stage("prod")
    policies = resources(synthesized.templates["prod"], "AWS::Events::EventBusPolicy").values()
    statements = [p["Properties"]["Statement"] for p in policies]
    principals = sorted(json.dumps(st["Principal"]) for st in statements)
    assert len(statements) == len(config.events.allowed_accounts) + 1
    for account in config.events.allowed_accounts:
        assert any(f"arn:aws:iam::{account}:root" in p for p in principals)
    (org,) = [st for st in statements if "Condition" in st]
    assert org["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": config.events.allowed_org_id}}
    assert all(st["Action"] == "events:PutEvents" for st in statements)
    assert resources(synthesized.templates["dev"], "AWS::Events::EventBusPolicy") == {}


def test_results_are_forwarded_to_the_central_bus_only_where_configured(synthesized):
    config = load_stage("prod")
    rules = patterns(synthesized.templates["prod"])
    assert rules["Explanation results, forwarded to the central bus"] == {
        "source": ["clarify-text-explanations"],
        "account": [config.account],  # only results this stage published itself
        "detail-type": ["Explanation Succeeded", "Explanation Failed"],
    }
    forward = [r for r in resources(synthesized.templates["prod"], "AWS::Events::Rule").values()
               if r["Properties"]["Description"].startswith("Explanation results")]  # fmt: skip
    assert forward[0]["Properties"]["Targets"][0]["Arn"] == config.events.central_bus_arn
    assert "Explanation results, forwarded to the central bus" not in patterns(synthesized.templates["dev"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_people_get_each_outcome_through_an_input_transformer(synthesized, stage):
    (rule,) = [r for r in resources(synthesized.templates[stage], "AWS::Events::Rule").values()
               if r["Properties"]["Description"] == "Each run's outcome, as a message on the alarms topic"]  # fmt: skip
    assert rule["Properties"]["EventPattern"] == {
        "source": ["clarify-text-explanations"],
        "account": [load_stage(stage).account],
        "detail-type": ["Explanation Succeeded", "Explanation Failed"],
    }
    (target,) = rule["Properties"]["Targets"]
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {
        "detail-run_id": "$.detail.run_id",
        "detail-status": "$.detail.status",
        "detail-reason": "$.detail.reason",
        "detail-manifest": "$.detail.manifest",
    }
    assert "<detail-run_id>" in transformer["InputTemplate"]


def result_event(account: str, detail_type: str = "Explanation Succeeded", source: str = "clarify-text-explanations"):
    """An event as EventBridge hands it to rules: ``account`` is the sender's, set by EventBridge itself."""
    return {
        "version": "0", "id": "1", "detail-type": detail_type, "source": source, "account": account,
        "time": "2026-12-02T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"run_id": "r", "status": "SUCCEEDED", "reason": "", "manifest": "s3://m"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "description",
    ["Each run's outcome, as a message on the alarms topic", "Explanation results, forwarded to the central bus"],
)
def test_a_result_forged_by_an_allowed_account_pages_no_one_and_is_not_forwarded(synthesized, description):
    """The bus admits PutEvents from other accounts; only results published by the stage's own account match.

    moto's server cannot send as another account, and its TestEventPattern answers nothing: the events are matched
    with moto's EventBridge pattern engine itself, the one its buses route with.
    """
    from moto.events.models import EventPattern

    config = load_stage("prod")
    pattern = EventPattern.load(json.dumps(patterns(synthesized.templates["prod"])[description]))
    matches = pattern.matches_event
    assert matches(result_event(config.account))
    assert matches(result_event(config.account, "Explanation Failed"))
    (allowed,) = config.events.allowed_accounts
    assert not matches(result_event(allowed))  # an allowed sender, forging our source
    assert not matches(result_event("999999999999"))
    assert not matches(result_event(config.account, source="partner.app"))
