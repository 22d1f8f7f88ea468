"""cfn-lint, with the serverless rules, over a cloud assembly; and the findings this design accepts, each with its
reason (anything else is a failure)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

DEPLOY_TIME = r"BucketNotificationsHandler|CustomS3AutoDeleteObjects"
# cfn-lint (+ cfn-lint-serverless) findings this design accepts: rule -> (where, why). Anything else fails.
ACCEPTED = {
    "W3005": (r".*", "CDK writes an explicit DependsOn on a role's policy beside the GetAtt of the role, so a "
              "function or state machine is created only once its permissions exist; redundant, not wrong"),
    "E3703": (r"TextExplanations-pipeline", "CDK Pipelines' own templates join strings with Fn::Join; a style "
              "preference (Fn::Sub), with the same result"),
    "WS1004": (r".*", "our functions log to their own log group (LoggingConfig) with the stage's retention; the rule "
               "looks for /aws/lambda/<name> groups. CDK's deploy-time handlers keep Lambda's default group"),
    "WS1000": (DEPLOY_TIME, "CDK's bucket-notifications and auto-delete handlers run only when CloudFormation "
               "deploys or deletes the stack; tracing them would trace CloudFormation, not the workflow"),
    "ES1005": (DEPLOY_TIME, "CDK's deploy-time handlers: their memory is CDK's choice"),
    "ES6000": (r"TriggerUndelivered", "this queue is itself the dead-letter queue (of the rules and the starter)"),
    "ES7000": (r"MonitoringAlarms.*(Subscription|example)", "an email subscription: SNS retries email itself, and "
               "every alarm stays visible in CloudWatch; a DLQ for email deliveries is a team's choice"),
}  # fmt: skip


def lint(outdir: Path) -> list[dict]:
    templates = sorted(str(p) for p in outdir.rglob("*.template.json"))
    assert templates
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    result = subprocess.run([cfn_lint, "--format", "json", "--append-rules", "cfn_lint_serverless.rules", "--",
                             *templates], capture_output=True, text=True)  # fmt: skip
    assert result.stdout.startswith("["), result.stderr[-2000:]
    return json.loads(result.stdout)


def accepted(finding: dict) -> bool:
    rule = finding["Rule"]["Id"]
    if rule not in ACCEPTED:
        return False
    where = "/".join(str(p) for p in finding.get("Location", {}).get("Path", []))
    return re.search(ACCEPTED[rule][0], finding["Filename"] + " " + where + " " + finding["Message"]) is not None
