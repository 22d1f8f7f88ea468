"""A damaged model file is refused at load, by the container's ``serve`` and by the CLI, never served as zeros.

Each test cuts a real model trained in the session (``trained_model``) and loads the cut copy the way the product
does: ``Classifier.load``, the real ``serve`` program, the real ``textexplain explain`` process.
"""

from __future__ import annotations

import json
import struct

import pytest

from fasttext_server.model import Classifier, ModelError
from fasttext_server.model_file import read_layout
from tests.support.cli import cli
from textexplain import training
from textexplain.serving import ServeError, ServeProcess

FRACTIONS = (0.999, 0.9, 0.5, 0.1, 0.001)


def cut(trained_model, tmp_path, fraction: float):
    data = trained_model.model_file.read_bytes()
    target = tmp_path / "model"
    target.mkdir(exist_ok=True)
    (target / "model.bin").write_bytes(data[: max(1, int(len(data) * fraction))])
    return target


def test_the_header_declares_exactly_the_files_size(trained_model):
    layout = read_layout(trained_model.model_file)
    assert layout.size == trained_model.model_file.stat().st_size
    assert layout.output_rows == layout.nlabels == len(trained_model.labels)
    assert layout.supervised
    assert layout.loss == "softmax"


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_truncated_model_is_a_clear_model_error(trained_model, tmp_path, fraction):
    """Failed before the fix: fastText loaded every cut copy and answered all-zero probabilities."""
    model_dir = cut(trained_model, tmp_path, fraction)
    with pytest.raises(ModelError, match=r"cannot load .*model\.bin") as info:
        Classifier.load(model_dir)
    assert "bytes" in str(info.value) or "magic" in str(info.value)


def test_nan_weights_fail_the_probe(trained_model, tmp_path):
    """A file of the right size whose output weights are NaN: fastText answered NaN for every label."""
    data = bytearray(trained_model.model_file.read_bytes())
    layout = read_layout(trained_model.model_file)
    nan = struct.pack("<f", float("nan"))
    start = len(data) - 4 * layout.dim * layout.output_rows
    data[start:] = nan * (layout.dim * layout.output_rows)
    (tmp_path / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="probe prediction fails"):
        Classifier.load(tmp_path)


@pytest.mark.parametrize("fraction", [0.999, 0.5, 0.001])
def test_serve_refuses_to_start_on_a_truncated_model(trained_model, tmp_path, fraction):
    """Failed before the fix: ``serve`` started and /ping answered 200 for every cut copy."""
    model_dir = cut(trained_model, tmp_path, fraction)
    with pytest.raises(ServeError) as info, ServeProcess(model_dir, workers=1, startup_timeout=60):
        pass
    message = str(info.value)
    assert "exited with code 2" in message  # never healthy: it stopped before binding its port
    assert "cannot load" in message
    assert "model.bin" in message


def test_the_cli_refuses_a_truncated_model(trained_model, tmp_path):
    """Failed before the fix: ``textexplain explain`` exited 0 with a SUCCEEDED manifest and all-zero results."""
    model_dir = cut(trained_model, tmp_path, 0.9)
    tarball = training.package(model_dir / "model.bin", tmp_path / "model.tar.gz")
    data = tmp_path / "texts.csv"
    data.write_text("text\na river flows past the mill\nthe film opened in cinemas\n")
    out = tmp_path / "out"
    done = cli("explain", "--model", str(tarball), "--data", str(data), "--num-samples", "8", "--out", str(out),
               cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert "cannot load" in done.stderr, done.stderr
    assert "model.bin" in done.stderr
    assert "Traceback" not in done.stderr
    manifests = [json.loads(p.read_text()) for p in out.rglob("manifest.json")]
    assert all(m["status"] != "SUCCEEDED" for m in manifests)
