"""README's main command, `make demo`, run as written in the checkout, prints what README says it prints."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the run id hashes the trained model, and fastText's multi-threaded training is not reproducible byte for byte
RUN_ID = re.compile(r"texts-[0-9a-f]{16}")


def readme_demo() -> tuple[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    command, shown = re.search(r"```bash\n(make demo)\n```.*?```\n(.*?)```", text, flags=re.S).groups()
    return command, shown.strip().splitlines()


def test_make_demo_prints_what_the_readme_shows():
    command, shown = readme_demo()
    result = subprocess.run(command.split(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = [RUN_ID.sub("texts-<run>", line) for line in result.stdout.splitlines()]
    for line in shown:
        assert RUN_ID.sub("texts-<run>", line) in printed, f"README shows {line!r}; make demo printed:\n{result.stdout}"
    report = next(line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("report:"))
    assert (ROOT / report).is_file()
