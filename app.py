#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c stage=dev` (default dev). Stage settings live in config/stages/<stage>.json."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from infra.config import load_stage
from infra.stack import add_stage_stacks


def new_app(outdir: str | None = None, context: dict | None = None) -> cdk.App:
    """An App with cdk.json's context (feature flags), also when built in-process, e.g. by the tests."""
    context = {**json.loads((Path(__file__).parent / "cdk.json").read_text())["context"], **(context or {})}
    return cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)


def build_app(stages: list[str] | None = None, outdir: str | None = None, context: dict | None = None) -> cdk.App:
    """What `cdk synth` builds: the stage's stacks (``-c stage=``), and with ``-c multi_account=true`` also the
    artifact account's stack and the pipeline (with every stage inside); both nag packs over all of it."""
    app = new_app(outdir, context)
    chosen = stages or [app.node.try_get_context("stage") or "dev"]
    for stage in chosen:
        add_stage_stacks(app, load_stage(stage))
    if app.node.try_get_context("multi_account") in (True, "true"):
        add_multi_account_stacks(app)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(NIST80053R5Checks(verbose=True))
    return app


def add_multi_account_stacks(app: cdk.App) -> None:
    """`cdk synth -c multi_account=true`: also the artifact account's grants and the tooling account's pipeline."""
    from infra.multi_account import ArtifactsConfig, ModelArtifactsStack, PipelineConfig, PipelineStack, load_json

    artifacts = load_json("artifacts.json", ArtifactsConfig)
    readers = [load_stage(name) for name in artifacts.readers]
    ModelArtifactsStack(app, "TextExplanations-artifacts", config=artifacts, readers=readers)
    PipelineStack(app, "TextExplanations-pipeline", config=load_json("pipeline.json", PipelineConfig))


if __name__ == "__main__":
    build_app().synth()
