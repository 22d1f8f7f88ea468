"""Start-up and shutdown of the real ``serve`` program: refusals are loud, stops are clean."""

from __future__ import annotations

import shutil

import pytest

from textexplain.serving import ServeError, ServeProcess


def refused(model_dir, labels=None, **env) -> str:
    with pytest.raises(ServeError) as info, ServeProcess(model_dir, labels, workers=1, extra_env=env):
        pass
    assert "exited with code 2" in str(info.value)
    return str(info.value)


def test_label_mismatch_is_refused_naming_missing_and_extra(trained_model):
    labels = [*trained_model.labels[1:], "Dinosaur"]
    message = refused(trained_model.model_dir, labels)
    assert f"missing from LABELS ['{trained_model.labels[0]}']" in message
    assert "not in the model ['Dinosaur']" in message


def test_missing_model_lists_what_was_found(tmp_path):
    (tmp_path / "README.txt").write_text("no model here")
    assert "README.txt" in refused(tmp_path)


def test_two_model_candidates_are_refused(tmp_path, trained_model):
    shutil.copy(trained_model.model_file, tmp_path / "a.bin")
    shutil.copy(trained_model.model_file, tmp_path / "b.bin")
    assert "more than one model candidate" in refused(tmp_path)


def test_bad_environment_is_refused(trained_model):
    assert "SAGEMAKER_MODEL_SERVER_WORKERS='many'" in refused(
        trained_model.model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="many"
    )
    assert "LABELS is not JSON" in refused(trained_model.model_dir, LABELS="Film,Album")


def test_sigterm_stops_cleanly(trained_model):
    server = ServeProcess(trained_model.model_dir, workers=2).start()  # returns once /ping answered
    assert server.stop(timeout=30) == 0
    assert not server.healthy()
