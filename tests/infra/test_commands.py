"""Every `npx aws-cdk@2` command the README and docs show, run exactly as written, through app.py and cdk.json.

`synth` commands run for real (the CDK CLI from package-lock.json): each must exit 0 with no cdk-nag finding
(AwsSolutions and NIST 800-53 R5, both added by app.py), and its whole assembly, nested stage assemblies included,
must be clean under cfn-lint with the serverless rules, except the findings tests/support/cfn_lint.py accepts, each
with its reason.
`deploy` commands need an account; their stack names are checked with `list` under the same context instead. The
pipeline's own synth step is run as the pipeline runs it, and its assembly must hold the pipeline and every stage.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.config import ROOT
from infra.multi_account import SYNTH_COMMANDS, PipelineConfig, load_json
from tests.support.cfn_lint import ACCEPTED, accepted, lint

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI = ROOT / "node_modules" / ".bin" / "cdk"


def documented_commands() -> list[str]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"(?m)(?:^|`)\s*(npx aws-cdk@2 [^`\n#]+)", text):
            command = match.group(1).strip()
            if command.endswith("\\"):  # continued on the next line: the rest of the command follows
                continue
            found.append(command)
    return sorted(set(found))


def run(command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    argv = shlex.split(command)
    assert argv[:2] == ["npx", "aws-cdk@2"]
    # npx resolves aws-cdk@2 to the CLI pinned in package-lock.json (no download) because it satisfies "2"
    return subprocess.run(["npx", "--no-install", *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


pytestmark = pytest.mark.skipif(
    not CLI.exists(), reason="the CDK CLI (npm aws-cdk) is not installed: make test runs npm ci"
)


def synth_commands() -> list[str]:
    return [c for c in documented_commands() if shlex.split(c)[2] == "synth"]


def test_the_docs_show_the_commands_this_file_runs():
    commands = documented_commands()
    assert "npx aws-cdk@2 synth -c multi_account=true" in commands
    for stage in ("dev", "staging", "prod"):
        assert f"npx aws-cdk@2 synth -c stage={stage}" in commands
    assert SYNTH_COMMANDS[-1] in commands  # the pipeline's synth step is a documented command
    assert {shlex.split(c)[2] for c in commands} <= {"synth", "deploy", "bootstrap", "list"}


@pytest.fixture(scope="module")
def assemblies(tmp_path_factory):
    """Each documented synth command, run once; its cdk.out kept for the checks below."""
    kept = {}
    for command in synth_commands():
        shutil.rmtree(ROOT / "cdk.out", ignore_errors=True)  # cdk synth leaves an earlier synth's templates there
        result = run(command)
        out = tmp_path_factory.mktemp("assembly")
        if (ROOT / "cdk.out").is_dir():
            shutil.copytree(ROOT / "cdk.out", out / "cdk.out")
        kept[command] = (result, out / "cdk.out")
    return kept


@pytest.mark.parametrize("command", synth_commands())
def test_each_documented_synth_succeeds_with_no_nag_finding(assemblies, command):
    result, _ = assemblies[command]
    assert result.returncode == 0, result.stderr[-3000:]
    findings = [line for line in (result.stdout + result.stderr).splitlines()
                if re.search(r"\[(Error|Warning) at .*(AwsSolutions|NIST)", line)]  # fmt: skip
    assert findings == []


@pytest.fixture(scope="module")
def linted(assemblies):
    """cfn-lint's findings over each documented synth's assembly, once."""
    return {command: lint(outdir) for command, (result, outdir) in assemblies.items() if result.returncode == 0}


@pytest.mark.parametrize("command", synth_commands())
def test_each_assembly_is_clean_under_cfn_lint_with_the_serverless_rules(assemblies, linted, command):
    result, _ = assemblies[command]
    assert result.returncode == 0
    unaccepted = [(f["Rule"]["Id"], Path(f["Filename"]).name, f["Message"][:160]) for f in linted[command]
                  if not accepted(f)]  # fmt: skip
    assert unaccepted == []


def test_every_accepted_cfn_lint_finding_still_occurs(assemblies, linted):
    """An acceptance whose finding is gone (fixed, or the resource removed) is removed too, not left to excuse the
    next finding of that rule."""
    assert len(linted) == len(assemblies)  # every documented synth succeeded and was linted
    seen = {f["Rule"]["Id"] for findings in linted.values() for f in findings if accepted(f)}
    assert seen == set(ACCEPTED)


def test_the_pipelines_synth_step_builds_the_pipeline_and_every_stage(assemblies):
    command = SYNTH_COMMANDS[-1]
    result, outdir = assemblies[command]
    assert result.returncode == 0
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifacts = manifest["artifacts"]
    assert "TextExplanations-pipeline" in artifacts  # self-mutation deploys this template
    for stage in load_json("pipeline.json", PipelineConfig).stages:
        nested = f"assembly-TextExplanations-pipeline-{stage.title()}"
        assert artifacts[nested]["type"] == "cdk:cloud-assembly", nested
        inner = json.loads((outdir / nested / "manifest.json").read_text())["artifacts"]
        stacks = {a["properties"].get("stackName") for a in inner.values() if a["type"] == "aws:cloudformation:stack"}
        assert {f"TextExplanations-{stage}", f"TextExplanations-{stage}-images"} <= stacks


def context_of(command: str) -> list[str]:
    argv = shlex.split(command)
    return [f"-c {argv[i + 1]}" for i, a in enumerate(argv) if a == "-c"]


@pytest.mark.parametrize("command", [c for c in documented_commands() if shlex.split(c)[2] == "deploy"])
def test_each_documented_deploy_names_stacks_that_the_same_context_synthesizes(assemblies, command):
    """A deploy needs an account; the stacks it names must be in the assembly of the synth with the same context."""
    argv = shlex.split(command)
    named = [a for i, a in enumerate(argv[3:], 3) if not a.startswith("-") and argv[i - 1] != "-c"]
    (synth,) = [c for c in assemblies if context_of(c) == context_of(command)]
    result, outdir = assemblies[synth]
    assert result.returncode == 0
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {a.get("properties", {}).get("stackName", artifact) for artifact, a in manifest["artifacts"].items()
              if a["type"] == "aws:cloudformation:stack"}  # fmt: skip
    assert stacks
    assert set(named) <= stacks, (named, stacks)
