"""One stage's template synthesized in-process, as `cdk synth` makes it (the app's own stacks, no AWS lookups)."""

from __future__ import annotations

import json
from pathlib import Path

from infra.config import StageConfig


def synth(config: StageConfig, outdir: Path, image_context: Path | None = None) -> dict:
    from app import new_app
    from infra.stack import add_stage_stacks

    app = new_app(str(outdir))
    add_stage_stacks(app, config, **({"image_context": image_context} if image_context else {}))
    assembly = app.synth()
    return json.loads(
        (outdir / assembly.get_stack_by_name(f"TextExplanations-{config.stage}").template_file).read_text()
    )
