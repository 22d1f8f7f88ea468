"""The policy evaluator's own tests, on the cases AWS's IAM and KMS guides use to explain evaluation.

Each case restates a documented rule with our own small policies (IAM User Guide: "Policy evaluation logic",
"Cross-account policy evaluation logic", "Condition operators"; KMS Developer Guide: "Key policies in AWS KMS").
"""

from __future__ import annotations

import pytest

from tests.support.iam_eval import Policies, Principal, Request, evaluate

ROLE = "arn:aws:iam::111111111111:role/reader"
OTHER = "arn:aws:iam::222222222222:role/reader"
BUCKET = "arn:aws:s3:::data"
OBJECT = "arn:aws:s3:::data/runs/r1/out.json"


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def get(principal: str = ROLE, **context) -> Request:
    return Request(Principal.role(principal), "s3:GetObject", OBJECT, {"aws:SecureTransport": "true", **context})


TLS_ONLY = {
    "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": [BUCKET, f"{BUCKET}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}  # fmt: skip


def test_same_account_an_identity_allow_is_enough():
    policies = Policies(identity=[allow("s3:GetObject", f"{BUCKET}/runs/*")], resource=[TLS_ONLY],
                        resource_account="111111111111")  # fmt: skip
    assert evaluate(get(), policies)
    assert not evaluate(Request(Principal.role(ROLE), "s3:PutObject", OBJECT), policies)


def test_an_explicit_deny_wins_over_any_allow():
    policies = Policies(identity=[allow("s3:*", "*")], resource=[TLS_ONLY], resource_account="111111111111")
    decision = evaluate(get(**{"aws:SecureTransport": "false"}), policies)
    assert not decision
    assert decision.reason.startswith("explicit deny")


def test_same_account_a_resource_policy_naming_the_role_is_enough_but_naming_the_account_is_not():
    names_role = {**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": ROLE}}
    names_account = {**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": "arn:aws:iam::111111111111:root"}}
    assert evaluate(get(), Policies(resource=[names_role], resource_account="111111111111"))
    assert not evaluate(get(), Policies(resource=[names_account], resource_account="111111111111"))


def test_cross_account_needs_both_the_identity_and_the_resource_policy():
    bucket_allows = {**allow("s3:GetObject", f"{BUCKET}/*"), "Principal": {"AWS": "222222222222"}}
    identity = [allow("s3:GetObject", f"{BUCKET}/*")]
    assert evaluate(get(OTHER), Policies(identity=identity, resource=[bucket_allows], resource_account="111111111111"))
    assert not evaluate(get(OTHER), Policies(identity=identity, resource=[], resource_account="111111111111"))
    assert not evaluate(get(OTHER), Policies(identity=[], resource=[bucket_allows], resource_account="111111111111"))


def test_kms_needs_the_key_policy_before_any_identity_policy_counts():
    decrypt = Request(Principal.role(ROLE), "kms:Decrypt", "arn:aws:kms:eu-west-1:111111111111:key/k")
    identity = [allow("kms:Decrypt", "arn:aws:kms:eu-west-1:111111111111:key/k")]
    root = {**allow("kms:*"), "Principal": {"AWS": "arn:aws:iam::111111111111:root"}}
    assert not evaluate(decrypt, Policies(identity=identity, key=[], resource_account="111111111111"))
    assert not evaluate(decrypt, Policies(identity=identity, key=None, resource_account="111111111111"))
    assert evaluate(decrypt, Policies(identity=identity, key=[root], resource_account="111111111111"))
    assert not evaluate(decrypt, Policies(identity=[], key=[root], resource_account="111111111111"))
    names_role = {**allow("kms:Decrypt"), "Principal": {"AWS": ROLE}}
    assert evaluate(decrypt, Policies(identity=[], key=[names_role], resource_account="111111111111"))


def test_kms_across_accounts_needs_the_callers_identity_policy_even_when_the_key_policy_names_the_role():
    """KMS Developer Guide, 'Allowing users in other accounts to use a KMS key': the key policy of the owning account
    AND an IAM policy in the caller's account, whether the key policy names the account or the role itself."""
    decrypt = Request(Principal.role(OTHER), "kms:Decrypt", "arn:aws:kms:eu-west-1:111111111111:key/k")
    names_role = {**allow("kms:Decrypt"), "Principal": {"AWS": OTHER}}
    names_account = {**allow("kms:Decrypt"), "Principal": {"AWS": "arn:aws:iam::222222222222:root"}}
    identity = [allow("kms:Decrypt", "arn:aws:kms:eu-west-1:111111111111:key/k")]
    for key in (names_role, names_account):
        assert not evaluate(decrypt, Policies(identity=[], key=[key], resource_account="111111111111")), key
        assert evaluate(decrypt, Policies(identity=identity, key=[key], resource_account="111111111111")), key


def test_a_service_principal_is_allowed_only_by_the_resource_policy_and_its_conditions():
    topic = "arn:aws:sns:eu-west-1:111111111111:alarms"
    statement = {
        **allow("sns:Publish", topic), "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:*"},
                      "StringEquals": {"aws:SourceAccount": "111111111111"}},
    }  # fmt: skip
    publish = Request(Principal.of_service("cloudwatch.amazonaws.com"), "sns:Publish", topic)
    ours = {
        "aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:Failed",
        "aws:SourceAccount": "111111111111",
    }
    theirs = {"aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:999999999999:alarm:X", "aws:SourceAccount": "999999999999"}
    assert evaluate(publish.with_context(**ours), Policies(resource=[statement]))
    assert not evaluate(publish.with_context(**theirs), Policies(resource=[statement]))  # the confused deputy
    assert not evaluate(publish.with_context(**ours), Policies(resource=[]))  # no topic policy: refused


@pytest.mark.parametrize(
    ("operator", "context", "holds"),
    [
        ("StringEquals", {}, False),  # a missing key never matches
        ("StringNotEquals", {}, True),  # ... except for a negated operator
        ("StringEqualsIfExists", {}, True),  # ... or IfExists
        ("ForAllValues:StringEquals", {}, True),  # ... or ForAllValues (true for no values)
        ("ForAnyValue:StringEquals", {}, False),
        ("StringEquals", {"k": "a"}, True),
        ("StringEquals", {"k": "b"}, False),
        ("StringNotEquals", {"k": "a"}, False),
        ("ForAnyValue:StringEquals", {"k": ["x", "a"]}, True),
        ("ForAllValues:StringEquals", {"k": ["x", "a"]}, False),
    ],
)
def test_condition_operators_and_missing_keys(operator, context, holds):
    statement = allow("s3:GetObject", "*", Condition={operator: {"k": "a"}})
    request = Request(Principal.role(ROLE), "s3:GetObject", OBJECT, context)
    assert bool(evaluate(request, Policies(identity=[statement], resource_account="111111111111"))) is holds


def test_pass_role_only_to_the_named_service():
    statement = allow("iam:PassRole", "arn:aws:iam::111111111111:role/job",
                      Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})  # fmt: skip
    passing = Request(Principal.role(ROLE), "iam:PassRole", "arn:aws:iam::111111111111:role/job")
    policies = Policies(identity=[statement], resource_account="111111111111")
    assert evaluate(passing.with_context(**{"iam:PassedToService": "sagemaker.amazonaws.com"}), policies)
    assert not evaluate(passing.with_context(**{"iam:PassedToService": "lambda.amazonaws.com"}), policies)


def test_encryption_context_and_organisation_conditions():
    key = "arn:aws:kms:eu-west-1:111111111111:key/k"
    logs = {**allow("kms:GenerateDataKey"), "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                      "arn:aws:logs:eu-west-1:111111111111:log-group:*"}}}  # fmt: skip
    generate = Request(Principal.of_service("logs.eu-west-1.amazonaws.com"), "kms:GenerateDataKey", key)
    ours = {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:111111111111:log-group:/x"}
    theirs = {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:999999999999:log-group:/x"}
    assert evaluate(generate.with_context(**ours), Policies(key=[logs]))
    assert not evaluate(generate.with_context(**theirs), Policies(key=[logs]))

    bus = "arn:aws:events:us-east-1:111111111111:event-bus/b"
    org = {**allow("events:PutEvents", bus), "Principal": "*",
           "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}}  # fmt: skip
    put = Request(Principal.role(OTHER), "events:PutEvents", bus)
    policies = Policies(resource=[org], resource_account="111111111111", identity_allows_everything=True)
    assert evaluate(put.with_context(**{"aws:PrincipalOrgID": "o-abc"}), policies)
    assert not evaluate(put.with_context(**{"aws:PrincipalOrgID": "o-other"}), policies)
    assert not evaluate(put, policies)


def test_actions_match_case_insensitively_with_wildcards_and_not_action():
    policies = Policies(identity=[allow("S3:Get*", f"{BUCKET}/*")], resource_account="111111111111")
    assert evaluate(get(), policies)
    not_delete = Policies(identity=[{"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"}],
                          resource_account="111111111111")  # fmt: skip
    assert evaluate(get(), not_delete)
    assert not evaluate(Request(Principal.role(ROLE), "s3:DeleteObject", OBJECT), not_delete)
