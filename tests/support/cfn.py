"""Concrete values for a synthesized template, as CloudFormation would give them in one account and region.

Each resource gets a name from its logical id (bucket ``storageinput1a2b3c4d``, role ``StorageInput...``), and every
``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``/``Fn::Split`` and pseudo parameter resolves to the
ARN or name AWS documents for that resource type. Tests then read policies, environments and definitions as plain
strings, with ARNs that name the template's own resources.
"""

from __future__ import annotations

import re

PARTITION = "aws"
STAGES = ["dev", "staging", "prod"]  # config/stages/, in the order the pipeline deploys them


def resources(template: dict, kind: str) -> dict:
    """logical id -> resource, for every resource of type ``kind`` (e.g. ``AWS::Lambda::Function``)."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


class Resolver:
    def __init__(
        self, template: dict, account: str, region: str, imports: dict[str, str] | None = None, stack_name: str = ""
    ):
        self.resources = template.get("Resources", {})
        self.account, self.region = account, region
        self.imports = imports or {}
        self.stack_name = stack_name  # given: roles are named as CloudFormation names them, <stack>-<logical id>-<id>

    # -- names and ARNs by resource type --

    def name(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        props = self.resources[logical_id].get("Properties", {})
        fixed = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::Events::EventBus": "Name",
            "AWS::ECR::Repository": "RepositoryName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
        }.get(kind)
        if fixed and isinstance(props.get(fixed), str):
            return props[fixed]
        if kind == "AWS::IAM::Role" and self.stack_name:
            return f"{self.stack_name}-{logical_id}"[:51] + "-A1B2C3D4E5F6"
        return logical_id.lower() if kind == "AWS::S3::Bucket" else logical_id

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name, r, a = self.name(logical_id), self.region, self.account
        return {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{a}:role{self._path(logical_id)}{name}",
            "AWS::KMS::Key": f"arn:{PARTITION}:kms:{r}:{a}:key/{name}",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{r}:{a}:{name}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{r}:{a}:{name}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{r}:{a}:function:{name}",
            "AWS::Lambda::LayerVersion": f"arn:{PARTITION}:lambda:{r}:{a}:layer:{name}:1",
            "AWS::StepFunctions::StateMachine": f"arn:{PARTITION}:states:{r}:{a}:stateMachine:{name}",
            "AWS::Events::EventBus": f"arn:{PARTITION}:events:{r}:{a}:event-bus/{name}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{r}:{a}:rule/{name}",
            "AWS::ECR::Repository": f"arn:{PARTITION}:ecr:{r}:{a}:repository/{name}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::SageMaker::Model": f"arn:{PARTITION}:sagemaker:{r}:{a}:model/{name.lower()}",
            "AWS::CloudWatch::Alarm": f"arn:{PARTITION}:cloudwatch:{r}:{a}:alarm:{name}",
        }.get(kind, f"arn:{PARTITION}:cloudformation:{r}:{a}:resource/{logical_id}")

    def _path(self, logical_id: str) -> str:
        """A role's IAM path (``/`` unless the template sets one): part of its ARN and of aws:PrincipalArn."""
        return self.resources[logical_id].get("Properties", {}).get("Path", "/")

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "stack",
            "AWS::NoValue": None,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        kind = self.resources[logical_id]["Type"]
        if kind in (
            "AWS::SNS::Topic",
            "AWS::StepFunctions::StateMachine",
            "AWS::Lambda::LayerVersion",
            "AWS::SageMaker::Model",
        ):
            return self.arn(logical_id)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name(logical_id)}"
        return self.name(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute in ("Arn", "TopicArn", "ModelArn", "QueueArn"):
            return self.arn(logical_id)
        if attribute in ("Name", "ModelName", "TopicName", "QueueName", "KeyId", "RoleId"):
            return self.name(logical_id)
        if attribute == "QueueUrl":
            return self.ref(logical_id)
        if attribute == "RepositoryUri":
            return f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/{self.name(logical_id)}"
        if attribute in ("DomainName", "RegionalDomainName"):
            return f"{self.name(logical_id)}.s3.{self.region}.amazonaws.com"
        return f"{logical_id}.{attribute}"

    # -- intrinsic functions --

    def __call__(self, value):
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            return self.get_att(logical_id, attribute)
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self(p)) for p in self(parts))
        if set(value) == {"Fn::Select"}:
            index, items = value["Fn::Select"]
            return self(items)[int(index)]
        if set(value) == {"Fn::Split"}:
            separator, text = value["Fn::Split"]
            return str(self(text)).split(separator)
        if set(value) == {"Fn::Sub"}:
            body = value["Fn::Sub"]
            text, variables = (body, {}) if isinstance(body, str) else (body[0], self(body[1]))
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub_variable(m.group(1), variables)), text)
        if set(value) == {"Fn::ImportValue"}:
            name = self(value["Fn::ImportValue"])
            return self.imports.get(name, f"import:{name}")
        return {k: self(v) for k, v in value.items()}

    def _sub_variable(self, name: str, variables: dict):
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(name)
