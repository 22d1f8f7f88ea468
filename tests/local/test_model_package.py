"""model.tar.gz depends on the model's bytes only, so the local model's identity (its sha256) is the model's."""

from __future__ import annotations

import hashlib
import os
import tarfile

from textexplain import training


def test_the_same_model_packed_twice_is_the_same_archive(tmp_path):
    """Old packaging kept the file's and the archive's timestamps: a retrained, identical model got a new run id."""
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(4096))
    first = training.package(model, tmp_path / "a" / "model.tar.gz")
    os.utime(model, (1_000_000, 1_000_000))  # the same bytes, saved at another time
    second = training.package(model, tmp_path / "b" / "model.tar.gz")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with tarfile.open(first) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.size, member.isfile()) == ("model.bin", 4096, True)
        assert tar.extractfile(member).read() == model.read_bytes()
