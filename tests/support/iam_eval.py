"""AWS's documented policy evaluation, for the requests the authorization tests make against synthesized templates.

Implemented from the IAM User Guide ("Policy evaluation logic", "Cross-account policy evaluation logic", "IAM JSON
policy elements: Condition operators") and the KMS Developer Guide ("Key policies in AWS KMS"):

- an explicit Deny in any policy that applies wins;
- within one account, an Allow in the identity policy OR in the resource policy (naming the principal itself) is
  enough; a resource policy that names only the account (``arn:aws:iam::<account>:root``) leaves it to IAM;
- across accounts, both the caller's identity policy AND the resource's policy must allow;
- a service principal has no identity policy: the resource policy must allow it;
- KMS is the exception: the key policy must allow the principal, or allow its account, in which case an identity
  policy must allow too; without the key policy nothing else counts; a principal of another account always needs
  its identity policy as well. (Grants are not modelled.)

Conditions: the string, ARN, Bool, Null and numeric operators, ``...IfExists``, ``ForAnyValue:``/``ForAllValues:``.
A key missing from the request makes a condition false, except for the negated operators, ``...IfExists`` and
``ForAllValues:``, which are then true.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """Who calls: an IAM role (``arn``), a service (``service``), or any principal of an account (``account``)."""

    account: str | None
    arn: str | None = None
    service: str | None = None

    @staticmethod
    def role(arn: str) -> Principal:
        return Principal(account=arn.split(":")[4], arn=arn)

    @staticmethod
    def of_service(name: str) -> Principal:
        return Principal(account=None, service=name)


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str
    context: dict = field(default_factory=dict)  # condition keys, e.g. {"aws:SecureTransport": "true"}

    def with_context(self, **more) -> Request:
        return Request(self.principal, self.action, self.resource, {**self.context, **more})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _action_matches(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not any(_wildcard(a, action, case_sensitive=False) for a in _list(statement["NotAction"]))
    return any(_wildcard(a, action, case_sensitive=False) for a in _list(statement.get("Action", [])))


def _resource_matches(statement: dict, resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_wildcard(r, resource) for r in _list(statement["NotResource"]))
    if "Resource" not in statement:  # a resource policy may leave Resource out (e.g. a bus policy), meaning itself
        return True
    return any(_wildcard(r, resource) for r in _list(statement["Resource"]))


def principal_match(statement: dict, principal: Principal) -> str | None:
    """How a resource policy statement names the caller: "direct", "account" (its account's root), or None."""
    if "Principal" not in statement:
        return None
    named = statement["Principal"]
    if named == "*":
        return "direct"
    for kind, values in named.items():
        for value in _list(values):
            if kind == "Service" and principal.service and value == principal.service:
                return "direct"
            if kind == "AWS":
                if value == "*":
                    return "direct"
                if principal.arn and value == principal.arn:
                    return "direct"
                if principal.account and value in (principal.account, f"arn:aws:iam::{principal.account}:root"):
                    return "account"
    return None


# ---- conditions ----

_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
            "NumericNotEquals"}  # fmt: skip


def _compare(operator: str, actual: str, expected: str) -> bool:
    if operator in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if operator in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if operator in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        return _wildcard(expected, actual)
    if operator == "Bool":
        return str(actual).lower() == str(expected).lower()
    if operator.startswith("Numeric"):
        a, e = float(actual), float(expected)
        return {
            "NumericEquals": a == e, "NumericNotEquals": a == e, "NumericLessThan": a < e,
            "NumericLessThanEquals": a <= e, "NumericGreaterThan": a > e, "NumericGreaterThanEquals": a >= e,
        }[operator]  # fmt: skip
    raise NotImplementedError(f"condition operator {operator}")


def _condition_holds(full_operator: str, key: str, expected_values, context: dict) -> bool:
    qualifier, _, operator = full_operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    expected = [str(v) for v in _list(expected_values)]
    present = {k.lower(): v for k, v in context.items()}
    if operator == "Null":  # "true": the key must be absent
        return (key.lower() not in present) == (expected[0].lower() == "true")
    if key.lower() not in present:
        return if_exists or operator in _NEGATED or qualifier == "ForAllValues"
    actual = [str(v) for v in _list(present[key.lower()])]
    negated = operator in _NEGATED
    matches = lambda a: any(_compare(operator, a, e) for e in expected)  # noqa: E731
    # ForAllValues: every value in the request must match; otherwise (single-valued, ForAnyValue) any one
    result = all(matches(a) for a in actual) if qualifier == "ForAllValues" else any(matches(a) for a in actual)
    return not result if negated else result


def conditions_hold(statement: dict, context: dict) -> bool:
    for operator, pairs in statement.get("Condition", {}).items():
        for key, values in pairs.items():
            if not _condition_holds(operator, key, values, context):
                return False
    return True


def statement_applies(statement: dict, request: Request) -> bool:
    return (
        _action_matches(statement, request.action)
        and _resource_matches(statement, request.resource)
        and conditions_hold(statement, request.context)
    )


# ---- evaluation ----


@dataclass(frozen=True)
class Policies:
    """What applies to one request: the caller's identity statements, the resource's policy, the key's policy."""

    identity: list[dict] = field(default_factory=list)
    resource: list[dict] | None = None  # None: the resource type has no resource policy (or none is attached)
    key: list[dict] | None = None  # for kms:* requests: the key policy (required)
    resource_account: str | None = None
    identity_allows_everything: bool = False  # an outside caller whose own policies we assume allow all


def evaluate(request: Request, policies: Policies) -> Decision:
    principal = request.principal
    if principal.arn:  # global keys AWS puts in every request context of an IAM principal
        request = Request(
            principal,
            request.action,
            request.resource,
            {"aws:PrincipalArn": principal.arn, "aws:PrincipalAccount": principal.account, **request.context},
        )
    identity = [s for s in policies.identity if statement_applies(s, request)]
    if policies.identity_allows_everything:
        identity = [*identity, {"Effect": "Allow"}]
    on_resource = policies.key if request.action.lower().startswith("kms:") else policies.resource
    resource = [
        (s, how)
        for s in (on_resource or [])
        if statement_applies(s, request) and (how := principal_match(s, principal)) is not None
    ]
    denies = [s for s in identity if s.get("Effect") == "Deny"] + [s for s, _ in resource if s["Effect"] == "Deny"]
    if denies:
        return Decision(False, f"explicit deny: {denies[0].get('Sid', denies[0])}")
    identity_allows = any(s.get("Effect") == "Allow" for s in identity)
    direct = any(s["Effect"] == "Allow" and how == "direct" for s, how in resource)
    via_account = any(s["Effect"] == "Allow" and how == "account" for s, how in resource)
    same_account = principal.account is not None and principal.account == policies.resource_account

    if request.action.lower().startswith("kms:"):
        if policies.key is None:
            return Decision(False, "no key policy: KMS allows nothing without one")
        if direct and (principal.service is not None or same_account):
            return Decision(True, "the key policy allows the principal")
        if direct and identity_allows:  # another account's principal: its own IAM policy must allow the call too
            return Decision(True, "cross-account: the key policy names the principal and its identity policy allows")
        if via_account and identity_allows and principal.service is None:
            return Decision(True, "the key policy allows the account and an identity policy allows the call")
        return Decision(False, "the key policy allows neither the principal nor (with an identity allow) its account")

    if principal.service is not None:
        return Decision(direct, "the resource policy allows the service" if direct else "no resource policy allows it")
    if same_account:
        if identity_allows or direct:
            return Decision(True, "same account: an identity or resource policy allows it")
        return Decision(False, "same account: neither the identity nor the resource policy allows it")
    if identity_allows and (direct or via_account):
        return Decision(True, "cross-account: both the identity policy and the resource policy allow it")
    side = "the resource policy" if identity_allows else "the caller's identity policy"
    return Decision(False, f"cross-account: {side} does not allow it")


def matches_any(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)
