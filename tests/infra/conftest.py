"""Synthesize the CDK app once per test session, for every stage, with no AWS credentials."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cfn import STAGES

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass(frozen=True)
class Synthesized:
    stacks: dict  # stage -> Stack
    templates: dict  # stage -> template dict
    outdir: Path
    image_templates: dict  # stage -> the stage's image-repository stack template
    image_stacks: dict  # stage -> that stack


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> Synthesized:
    from app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(STAGES, outdir=str(outdir))
    assembly = app.synth()
    stacks = {
        s.stack_name.split("-")[1]: s
        for s in app.node.children
        if hasattr(s, "stack_name") and not s.stack_name.endswith("-images")
    }
    templates = {
        stage: json.loads((outdir / assembly.get_stack_by_name(f"TextExplanations-{stage}").template_file).read_text())
        for stage in STAGES
    }
    image_templates = {
        stage: json.loads(
            (outdir / assembly.get_stack_by_name(f"TextExplanations-{stage}-images").template_file).read_text()
        )
        for stage in STAGES
    }
    image_stacks = {s.stack_name.split("-")[1]: s for s in app.node.children if s.node.id.endswith("-images")}
    return Synthesized(stacks, templates, outdir, image_templates, image_stacks)
