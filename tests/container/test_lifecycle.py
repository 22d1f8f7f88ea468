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
from textexplain.serving import free_port

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


STOPS = [(sig, phase) for sig in (signal.SIGTERM, signal.SIGKILL) for phase in PHASES]
STOPS.append((signal.SIGINT, "explain-explaining"))  # Ctrl-C


@pytest.mark.parametrize(("sig", "phase"), STOPS, ids=[f"{sig.name}-{phase}" for sig, phase in STOPS])
def test_a_stopped_cli_run_leaves_no_temporary_files(trained_model, tmp_path, sig, phase):
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    if phase.startswith("explain"):
        data = tmp_path / "texts.csv"
        data.write_text("text\n" + "".join(f'"a river flows through valley number {i}"\n' for i in range(300)))
        argv = ["explain", "--model", str(trained_model.tarball), "--data", str(data), "--out", str(out)]
    else:
        argv = ["demo", "--out", str(out), "--records", "200"]
    # started as a terminal starts a command, with Ctrl-C's default action: a suite run in the background of a
    # non-interactive shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    run = subprocess.Popen(
        [sys.executable, "-m", "textexplain.cli", *argv, "--num-samples", "2000"],
        env={**os.environ, "TMPDIR": str(tmp)}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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
    if sig != signal.SIGKILL:  # stopped in order: the exit code says by what, and nothing is traced
        assert run.returncode == 128 + sig, stderr
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


# (file name, its bytes) -> what the error must say about it, after "--data <path>"
BAD_FILES = {
    "empty.csv": (b"", " is empty (0 bytes); expected a header row and data rows"),
    "latin1.csv": (b"text\ncaf\xe9\n", " is not valid UTF-8: byte 8 is not part of a UTF-8 character"),
    "noheader.csv": (b"\n", " has no header row: its first line must name the columns"),
    "column.csv": (
        b"body\nhello\n",
        ": no column named 'text'; the header has ['body']; name the column with --text-column",
    ),
    "fields.csv": (b"id,text\n1,a river\n2\n", ": 1 fields where the header has 2 (row 2, line 3)"),
    "quote.csv": (b'text\n"a river\n', ": malformed CSV: unexpected end of data (line 2)"),
}


# estimate reads the header and counts rows; explain (prepare) also validates every row
BAD_FILE_CASES = [("explain", name) for name in BAD_FILES] + [
    ("estimate", name) for name in ("empty.csv", "latin1.csv", "noheader.csv", "column.csv")
]


@pytest.mark.parametrize(("command", "name"), BAD_FILE_CASES)
def test_a_bad_data_file_is_named_with_what_is_wrong(trained_model, tmp_path, capsys, command, name):
    data, (content, message) = tmp_path / name, BAD_FILES[name]
    data.write_bytes(content)
    if command == "explain":
        argv = ["explain", "--model", str(trained_model.tarball), "--data", str(data), "--out", str(tmp_path / "o")]
        option = "--data"
    else:
        argv, option = ["estimate", "--input", str(data)], "--input"
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"textexplain {command}: error: {option} {data}{message}" in err, err
    assert "Traceback" not in err


def test_train_names_the_file_and_the_column_option(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_bytes(b"text,kind\na river,NaturalPlace\n")
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "m.tar.gz")]) == cli.EXIT_BAD_INPUT
    assert f"--data {data}: no column named 'label'; the header has ['text', 'kind']; name it with --label-column" in (
        capsys.readouterr().err
    )
    data.write_bytes(b"text,label\ncaf\xe9,Film\n")
    assert cli.main(["train", "--data", str(data)]) == cli.EXIT_BAD_INPUT
    assert f"--data {data} is not valid UTF-8: byte 14" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "make", "message"),
    [
        ("--model", lambda d: d, "is a directory; pass the model.tar.gz file"),
        ("--model", lambda d: d / "missing.tar.gz", "does not exist"),
        (
            "--model",
            lambda d: d / "t.csv",
            "is not a tar archive; pass the model.tar.gz that `textexplain train` writes",
        ),
        ("--analysis-config", lambda d: d / "t.csv", "is not JSON: Expecting value at line 1, column 1"),
        ("--analysis-config", lambda d: d / "missing.json", "does not exist"),
    ],
)
def test_model_and_config_errors_name_the_option_and_the_file(trained_model, tmp_path, capsys, option, make, message):
    data = tmp_path / "t.csv"
    data.write_text("text\na river\n")
    path = make(tmp_path)
    argv = ["explain", "--data", str(data), "--out", str(tmp_path / "o")]
    argv += [option, str(path)] if option == "--model" else ["--model", str(trained_model.tarball), option, str(path)]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert f"{option} {path} {message}" in capsys.readouterr().err


def test_an_endpoint_that_cannot_be_reached_is_named(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text("text\na river\n")
    port = free_port()  # nothing listens there
    argv = ["explain", "--endpoint-url", f"http://127.0.0.1:{port}", "--labels", '["Film"]', "--data", str(data)]
    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == cli.EXIT_BAD_INPUT
    assert f"--endpoint-url http://127.0.0.1:{port} cannot be reached: [Errno 111] Connection refused" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()  # refused before anything was prepared


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--records", "0"],
        ["demo", "--num-samples", "-3"],
        ["train", "--data", "t.csv", "--held-out", "1"],
        ["train", "--data", "t.csv", "--epochs", "zero"],
        ["explain", "--model", "m.tar.gz", "--data", "t.csv", "--max-rows", "0"],
    ],
)
def test_numbers_out_of_range_are_refused_by_the_option_that_takes_them(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert f"error: argument {argv[-2]}: " in capsys.readouterr().err


def test_report_names_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert f"{tmp_path} is not a run directory" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"AWS_PROFILE": "nope"}, "textexplain status: error: AWS: The config profile (nope) could not be found"),
        ({}, "textexplain status: error: no AWS credentials found; configure them"),
    ],
    ids=["unknown-profile", "no-credentials"],
)
def test_aws_commands_say_what_is_missing(tmp_path, extra, message):
    # no AWS settings at all, and no instance metadata lookup (nothing leaves this machine); the region is the
    # stage's own, so no "You must specify a region"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", **extra}
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", "textexplain.cli", "status", "some-run", "--stage", "dev"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == cli.EXIT_BAD_INPUT, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "specify a region" not in done.stderr


KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from textexplain.serving import ReapedFileStorage, temporary_files
    with temporary_files() as private:
        (private / "extracted-model").mkdir()
        with ReapedFileStorage(sys.argv[1]).writer("results", "runs/r/out.jsonl", "application/jsonlines") as fh:
            fh.write(b"half a line")
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_process_killed_mid_write_leaves_neither_its_partial_nor_its_temporary_directory(tmp_path):
    tmp, root = tmp_path / "tmp", tmp_path / "storage"
    tmp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(root)], env={**os.environ, "TMPDIR": str(tmp)}, cwd=ROOT
    )
    assert done.returncode == -signal.SIGKILL
    assert (root / "results" / "runs" / "r").is_dir()  # the writer had begun there
    assert wait_for(lambda: not partials(root) and not list(tmp.iterdir()), 30), (partials(root), list(tmp.iterdir()))
    assert not (root / "results" / "runs" / "r" / "out.jsonl").exists()  # and nothing half-written was published
