"""The commands README shows, run as written: `make demo` (it prints what README says it prints), `make lint`, and
the "your own data" pair, train then explain."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.checkout import make, set_aside
from tests.support.data import write_csv
from textexplain import synthetic

ROOT = Path(__file__).resolve().parents[2]
# the run id hashes the trained model, and fastText's multi-threaded training is not reproducible byte for byte
RUN_ID = re.compile(r"texts-[0-9a-f]{16}")


def readme_demo() -> tuple[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    command, shown = re.search(r"```bash\n(make demo)\n```.*?```\n(.*?)```", text, flags=re.S).groups()
    return command, shown.strip().splitlines()


def test_make_demo_prints_what_the_readme_shows():
    command, shown = readme_demo()
    assert command.split()[0] == "make", command
    # with no demo-output/ of an earlier run (its "already explained" prints other lines); left as it was found
    with set_aside("demo-output"):
        result = make(command.split()[1:], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
        printed = [RUN_ID.sub("texts-<run>", line) for line in result.stdout.splitlines()]
        for line in shown:
            assert RUN_ID.sub("texts-<run>", line) in printed, (
                f"README shows {line!r}; make demo printed:\n{result.stdout}"
            )
        report = next(line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("report:"))
        assert (ROOT / report).is_file()


def test_make_lint_runs_as_written():
    result = make(["lint"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def own_data_commands() -> list[str]:
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    section = text[text.index("Your own data:") :]
    return re.findall(r"`(\.venv/bin/textexplain [^`]+)`", section)[:2]


def test_the_own_data_commands_run_as_written(tmp_path):
    commands = own_data_commands()
    assert [c.split()[1] for c in commands] == ["train", "explain"], commands
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the commands name the checkout's .venv/bin, relative
    labelled = synthetic.generate(700, seed=3)
    write_csv(tmp_path / "labelled.csv", ["text", "label"], ([ex.text, ex.label] for ex in labelled))
    write_csv(tmp_path / "texts.csv", ["text"], ([ex.text] for ex in synthetic.generate(3, seed=4)))
    for command in commands:
        result = subprocess.run(command.split(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "model.tar.gz").is_file()
    assert "explained 3 records" in result.stdout, result.stdout


def test_the_local_guide_train_command_runs_as_written(tmp_path):
    text = (ROOT / "docs" / "local.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"`(textexplain train --data f\.csv [^`]+)`", text)
    labelled = synthetic.generate(700, seed=5)
    write_csv(tmp_path / "f.csv", ["text", "label"], ([ex.text, ex.label] for ex in labelled))
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command.split(), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert re.search(r"held-out accuracy", result.stdout + result.stderr), result.stdout
    assert (tmp_path / "model.tar.gz").is_file()
