"""Synthesize the CDK app once per test session, for every stage, with no AWS credentials."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from explain_workflow.contract import stack_names
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
    names = {stage: stack_names(stage) for stage in STAGES}  # (image repository stack, stage stack)
    by_name = {s.stack_name: s for s in app.node.children if hasattr(s, "stack_name")}

    def template(name: str) -> dict:
        return json.loads((outdir / assembly.get_stack_by_name(name).template_file).read_text())

    return Synthesized(
        stacks={stage: by_name[stage_stack] for stage, (_, stage_stack) in names.items()},
        templates={stage: template(stage_stack) for stage, (_, stage_stack) in names.items()},
        outdir=outdir,
        image_templates={stage: template(images) for stage, (images, _) in names.items()},
        image_stacks={stage: by_name[images] for stage, (images, _) in names.items()},
    )
