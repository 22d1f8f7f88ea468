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
    "W3005": (r"dependency already enforced by a 'GetAtt' at '[^']*/Properties/Role(Arn)?'", "CDK makes each "
              "function and the state machine depend on its role and the role's policy, so it is created only once its "
              "permissions exist; the role's part is also implied by the GetAtt of its ARN: redundant, not wrong"),
    "WS1004": (r".*", "our functions log to their own log group (LoggingConfig) with the stage's retention; the rule "
               "looks for /aws/lambda/<name> groups. CDK's deploy-time handlers keep Lambda's default group"),
    "WS1000": (DEPLOY_TIME, "CDK's bucket-notifications and auto-delete handlers run only when CloudFormation "
               "deploys or deletes the stack; tracing them would trace CloudFormation, not the workflow"),
    "ES6000": (r"TriggerUndelivered", "this queue is itself the dead-letter queue (of the rules and the starter)"),
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
