"""The commands docs/image.md shows, run as written, one after the other, in a directory laid out as a checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.image import podman

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.image


def documented_commands() -> list[str]:
    text = (ROOT / "docs" / "image.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_the_documented_image_commands_run_as_written(built_image, trained_model, tmp_path):
    work = tmp_path / "checkout"
    (work / "demo-output").mkdir(parents=True)
    (work / "scripts").symlink_to(ROOT / "scripts")
    shutil.copy(trained_model.tarball, work / "demo-output" / "model.tar.gz")
    for directory in (work, *work.parents):  # the image's user (uid 10001) must reach the mounted model
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o755)
    commands = documented_commands()
    assert commands[0].startswith("scripts/image.sh build")
    outputs = []
    try:
        for command in commands:
            result = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            outputs.append(result.stdout + result.stderr)
    finally:
        podman("rm", "-f", "demo", check=False)
    assert outputs[0].strip().splitlines()[-1] == built_image
    assert "serving (model) on 0.0.0.0:8080" in "\n".join(outputs)  # the server's start-up line, from podman logs
