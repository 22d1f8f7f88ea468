"""The builtin job's model.tar.gz check where Python has no tarfile data filter (before 3.11.4; the image's Debian
bookworm Python is 3.11.2): members that are plain files or directories inside the target are extracted, and a link,
a device, an absolute name or one climbing out with ``..`` is refused by name, nothing written outside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from textexplain import job


def archive(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def model_input(tmp_path: Path, members: list[tarfile.TarInfo]) -> Path:
    model = tmp_path / "input" / "model"
    model.mkdir(parents=True)
    archive(model / "model.tar.gz", members)
    return model


@pytest.fixture
def no_data_filter(monkeypatch):
    """This interpreter as one before 3.11.4: no tarfile.data_filter, so the job's own check is the one that runs."""
    monkeypatch.delattr(tarfile, "data_filter")


def test_plain_files_and_directories_are_extracted(tmp_path, no_data_filter):
    model = model_input(tmp_path, [member("model.bin", size=5), member("extra", tarfile.DIRTYPE),
                                   member("extra/notes.txt", size=2)])  # fmt: skip
    into = tmp_path / "opt-ml-model"
    into.mkdir()
    assert job.extract_model(model, into) == into
    assert (into / "model.bin").read_bytes() == b"xxxxx"
    assert (into / "extra" / "notes.txt").read_bytes() == b"xx"


@pytest.mark.parametrize(
    "bad",
    [
        member("../escaped.bin", size=1),
        member("/tmp/absolute.bin", size=1),
        member("sub/../../escaped.bin", size=1),
        member("model.bin", tarfile.SYMTYPE, link="/etc/passwd"),
        member("model.bin", tarfile.LNKTYPE, link="../outside"),
        member("tty", tarfile.CHRTYPE),
        member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_a_member_that_is_not_a_plain_file_inside_is_refused_by_name(tmp_path, no_data_filter, bad):
    model = model_input(tmp_path, [member("ok.txt", size=1), bad])
    into = tmp_path / "work" / "opt-ml-model"
    into.mkdir(parents=True)
    with pytest.raises(job.JobError, match=r"member .* is not a plain file or directory inside the archive") as err:
        job.extract_model(model, into)
    assert repr(bad.name) in str(err.value)
    assert list(into.iterdir()) == []  # checked before anything is written
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["opt-ml-model"]


def test_with_the_data_filter_the_same_archives_are_refused_too(tmp_path):
    """Where Python has the filter (the dev and CI interpreters) it decides; the same escape is still refused."""
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter")
    model = model_input(tmp_path, [member("../escaped.bin", size=1)])
    into = tmp_path / "opt-ml-model"
    into.mkdir()
    with pytest.raises(job.JobError, match=r"not a readable model\.tar\.gz"):
        job.extract_model(model, into)
    assert not (tmp_path / "escaped.bin").exists()
