"""Synthesize the CDK app once per test session, for every stage, with no AWS credentials."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

STAGES = ["dev", "staging", "prod"]


@dataclass(frozen=True)
class Synthesized:
    stacks: dict  # stage -> Stack
    templates: dict  # stage -> template dict
    outdir: Path


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> Synthesized:
    from app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(STAGES, outdir=str(outdir))
    assembly = app.synth()
    stacks = {s.stack_name.rsplit("-", 1)[-1]: s for s in app.node.children if hasattr(s, "stack_name")}
    templates = {
        stage: json.loads((outdir / assembly.get_stack_by_name(f"TextExplanations-{stage}").template_file).read_text())
        for stage in STAGES
    }
    return Synthesized(stacks, templates, outdir)


def resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}
