#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c stage=dev` (default dev). Stage settings live in config/stages/<stage>.json."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from infra.config import load_stage
from infra.stack import TextExplanationStack


def build_app(stages: list[str] | None = None, outdir: str | None = None) -> cdk.App:
    # cdk.json's context (feature flags) also when the app is built in-process, e.g. by the tests
    context = json.loads((Path(__file__).parent / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)
    chosen = stages or [app.node.try_get_context("stage") or "dev"]
    for stage in chosen:
        TextExplanationStack(app, f"TextExplanations-{stage}", config=load_stage(stage))
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(NIST80053R5Checks(verbose=True))
    return app


if __name__ == "__main__":
    build_app().synth()
