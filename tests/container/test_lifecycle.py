"""The local server never outlives its parent, and the CLI says what is wrong; real processes throughout."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from textexplain import cli

ROOT = Path(__file__).resolve().parents[2]


def serve_pids(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (the serve master and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := serve_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


PARENT = textwrap.dedent(
    """
    import sys, time
    from textexplain.serving import ServeProcess
    server = ServeProcess(sys.argv[1], workers=2, extra_env={"LIFECYCLE_MARKER": sys.argv[2]}).start()
    print(server.url, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_serve_dies_with_its_parent(trained_model, sig):
    marker = f"lifecycle-{os.getpid()}-{sig.name}"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(trained_model.model_dir), marker], stdout=subprocess.PIPE, text=True
    )
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert len(serve_pids(marker)) == 3  # master + 2 workers
        parent.send_signal(sig)
        parent.wait(10)
        assert wait_until_gone(marker) == []
    finally:
        parent.kill()
        for pid in serve_pids(marker):
            os.kill(pid, signal.SIGKILL)


def partials(out: Path) -> list[Path]:
    return [p for p in out.rglob(".partial-*")] if out.exists() else []


def wait_for(condition, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def training_files(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.is_file() and p.parent.name.startswith("fasttext-train-")]


# (command, what the run is doing when the signal arrives)
PHASES = {
    "explain-explaining": lambda tmp, out: partials(out),
    "demo-training": lambda tmp, out: training_files(tmp),
    "demo-explaining": lambda tmp, out: partials(out),
}


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_cli_run_leaves_no_temporary_files(trained_model, tmp_path, sig, phase):
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    if phase.startswith("explain"):
        data = tmp_path / "texts.csv"
        data.write_text("text\n" + "".join(f'"a river flows through valley number {i}"\n' for i in range(300)))
        argv = ["explain", "--model", str(trained_model.tarball), "--data", str(data), "--out", str(out)]
    else:
        argv = ["demo", "--out", str(out), "--records", "200"]
    run = subprocess.Popen(
        [sys.executable, "-m", "textexplain.cli", *argv, "--num-samples", "2000"],
        env={**os.environ, "TMPDIR": str(tmp)}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: PHASES[phase](tmp, out) or run.poll() is not None), f"{phase} was never reached"
        assert run.poll() is None, run.communicate()
        run.send_signal(sig)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # the watchdog that outlives the run removes what it left: extracted model, training files, half-written outputs
    assert wait_for(lambda: not list(tmp.iterdir()) and not partials(out), 30), (list(tmp.rglob("*")), partials(out))
    if sig == signal.SIGTERM:
        assert run.returncode == 128 + signal.SIGTERM, stderr
        assert "Traceback" not in stderr


def test_a_directory_as_data_is_named_as_a_directory(tmp_path, capsys):
    code = cli.main(["explain", "--model", "m.tar.gz", "--data", str(tmp_path)])
    assert code == cli.EXIT_BAD_INPUT
    assert f"--data {tmp_path} is a directory; pass the CSV file itself" in capsys.readouterr().err


def test_train_and_estimate_name_a_directory_too(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "is a directory" in capsys.readouterr().err
    assert cli.main(["estimate", "--input", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"Film"', """--labels '"Film"' is one JSON string, not a list; write --labels '["Film"]'"""),
        ("Film,Album", "is not JSON; write the labels as a JSON list"),
        ("[]", "must be a non-empty JSON list of non-empty strings"),
        ('["Film", 3]', "must be a non-empty JSON list of non-empty strings"),
        ('["Film", "Film"]', "names ['Film'] more than once"),
    ],
)
def test_labels_errors_say_what_is_wrong(raw, message, tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text("text\nx\n")
    assert cli.main(["explain", "--endpoint-url", "http://127.0.0.1:9", "--data", str(data), "--labels", raw]) == 2
    assert message in capsys.readouterr().err


def test_labels_accepts_a_json_list():
    assert cli.parse_labels('["Film", "Album"]') == ["Film", "Album"]


def test_every_option_has_a_help_text():
    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name}: {'/'.join(action.option_strings) or action.dest}")

    walk(cli.build_parser(), "textexplain")
    assert missing == []


def test_help_is_printed_for_every_command():
    for command in ("demo", "train", "explain", "status", "estimate", "report"):
        result = subprocess.run(
            [sys.executable, "-m", "textexplain.cli", command, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        assert "usage: textexplain" in result.stdout


def test_labels_help_shows_the_json_form():
    assert json.loads('["Film", "Album"]') == ["Film", "Album"]
    assert '["Film", "Album"]' in subprocess.run(
        [sys.executable, "-m", "textexplain.cli", "explain", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout.replace("\n", " ")
