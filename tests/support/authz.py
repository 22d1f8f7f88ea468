"""The policies of synthesized templates, indexed for the evaluator: identity policies by role, resource policies by
the resource they guard (bucket, topic, queue, bus, function, key), all with concrete ARNs (tests/support/cfn.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.cfn import Resolver
from tests.support.iam_eval import Decision, Policies, Principal, Request, evaluate


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


@dataclass
class StackPolicies:
    template: dict
    account: str
    region: str
    stack_name: str = ""
    identity: dict[str, list[dict]] = field(default_factory=dict)  # role ARN -> statements
    managed: dict[str, list] = field(default_factory=dict)  # role ARN -> managed policy ARNs (not evaluated)
    resource: dict[str, list[dict]] = field(default_factory=dict)  # resource ARN -> statements
    s3_buckets: set[str] = field(default_factory=set)  # bucket ARNs of this stack (S3 ARNs carry no account)

    def __post_init__(self):
        self.resolve = Resolver(self.template, self.account, self.region, stack_name=self.stack_name)
        resources = self.template["Resources"]
        for logical_id, res in resources.items():
            kind, props = res["Type"], res.get("Properties", {})
            if kind == "AWS::IAM::Role":
                arn = self.resolve.arn(logical_id)
                self.identity.setdefault(arn, [])
                for inline in props.get("Policies", []):
                    self.identity[arn].extend(self.resolve(inline["PolicyDocument"])["Statement"])
                self.managed[arn] = self.resolve(props.get("ManagedPolicyArns", []))
            elif kind == "AWS::S3::Bucket":
                self.s3_buckets.add(self.resolve.arn(logical_id))
        for res in resources.values():
            kind, props = res["Type"], res.get("Properties", {})
            if kind == "AWS::IAM::Policy":
                statements = self.resolve(props["PolicyDocument"])["Statement"]
                for role in props.get("Roles", []):
                    self.identity.setdefault(self.resolve.arn(role["Ref"]), []).extend(statements)
            elif kind == "AWS::S3::BucketPolicy":
                self._add(self.resolve.arn(props["Bucket"]["Ref"]), props["PolicyDocument"])
            elif kind == "AWS::SNS::TopicPolicy":
                for topic in props["Topics"]:
                    self._add(self.resolve(topic), props["PolicyDocument"])
            elif kind == "AWS::SQS::QueuePolicy":
                for queue in props["Queues"]:
                    self._add(self.resolve.arn(queue["Ref"]), props["PolicyDocument"])
            elif kind == "AWS::KMS::Key":
                self._add(None, props["KeyPolicy"], owner=res)
            elif kind == "AWS::Events::EventBusPolicy":
                bus = self.resolve(props["EventBusName"])
                arn = bus if bus.startswith("arn:") else f"arn:aws:events:{self.region}:{self.account}:event-bus/{bus}"
                self.resource.setdefault(arn, []).append(self.resolve(props["Statement"]))
            elif kind == "AWS::Lambda::Permission":
                self.resource.setdefault(self.resolve(props["FunctionName"]), []).append(self._permission(props))
        for logical_id, res in resources.items():
            if res["Type"] == "AWS::KMS::Key":
                self.resource[self.resolve.arn(logical_id)] = self.resolve(res["Properties"]["KeyPolicy"])["Statement"]

    def _add(self, arn, document, owner=None):
        if arn is not None:
            self.resource.setdefault(arn, []).extend(self.resolve(document)["Statement"])

    def _permission(self, props: dict) -> dict:
        principal = self.resolve(props["Principal"])
        named = {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal}
        conditions = {}
        if "SourceArn" in props:
            conditions["ArnLike"] = {"aws:SourceArn": self.resolve(props["SourceArn"])}
        if "SourceAccount" in props:
            conditions["StringEquals"] = {"aws:SourceAccount": self.resolve(props["SourceAccount"])}
        function = self.resolve(props["FunctionName"])
        return {"Effect": "Allow", "Principal": named, "Action": props["Action"], "Resource": function,
                "Condition": conditions}  # fmt: skip

    # -- lookups --

    def role(self, logical_prefix: str) -> str:
        return self.resolve.arn(self.logical(logical_prefix, "AWS::IAM::Role"))

    def arn_of(self, logical_prefix: str) -> str:
        (logical_id,) = [i for i in self.template["Resources"] if i.startswith(logical_prefix)]
        return self.resolve.arn(logical_id)

    def logical(self, logical_prefix: str, kind: str | None = None) -> str:
        (logical_id,) = [
            i for i, r in self.template["Resources"].items()
            if i.startswith(logical_prefix) and (kind is None or r["Type"] == kind)
        ]  # fmt: skip
        return logical_id


class World:
    """Every stack a request may touch (a stage, the artifacts account), so cross-account calls see both sides."""

    def __init__(
        self, *stacks: StackPolicies, default_account: str | None = None, external: dict[str, list] | None = None
    ):
        self.stacks = stacks
        self.external = external or {}  # resource policies of resources owned by AWS or other teams (assumed)
        self.default_account = default_account  # owner of S3 buckets no template defines (a team's own buckets)

    def _owner(self, resource: str) -> tuple[str | None, list[dict] | None]:
        if resource.startswith("arn:aws:s3:::"):
            bucket = resource.split("/", 1)[0]
            for stack in self.stacks:
                if bucket in stack.s3_buckets:
                    return stack.account, stack.resource.get(bucket, [])
            return self.default_account, None
        if resource == "*":  # an action without resource-level permissions: it acts in the caller's own account
            return None, None
        account = resource.split(":")[4] or None
        for stack in self.stacks:
            if resource in stack.resource:
                return account, stack.resource[resource]
        return account, self.external.get(resource)

    def identity_of(self, principal: Principal) -> list[dict]:
        for stack in self.stacks:
            if principal.arn in stack.identity:
                return stack.identity[principal.arn]
        return []

    def evaluate(self, request: Request, *, outsider: bool = False) -> Decision:
        """``outsider``: a principal of another account whose own policies allow everything (the worst case)."""
        account, statements = self._owner(request.resource)
        account = account or request.principal.account
        is_key = request.action.lower().startswith("kms:")
        policies = Policies(
            identity=[] if request.principal.service else self.identity_of(request.principal),
            resource=None if is_key else statements,
            key=statements if is_key else None,
            resource_account=account,
            identity_allows_everything=outsider,
        )
        return evaluate(request, policies)
