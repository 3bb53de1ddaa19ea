from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from data_sidecar.archives import ArchiveRejected, extract_archive, member_path
from tests.data_sidecar.builders import make_zip
from workflow_contracts.manifest import ArchiveLimits


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", PurePosixPath("a.txt")),
        ("./dir/b.txt", PurePosixPath("dir/b.txt")),
        ("dir//c.txt", PurePosixPath("dir/c.txt")),
        ("dir/", PurePosixPath("dir")),
        ("./", None),
    ],
)
def test_member_path_accepts_relative_names(name: str, expected: PurePosixPath | None) -> None:
    assert member_path(name) == expected


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../x", "a/../../x", "a/..", "..\\x", "C:/windows/x", "c:x", "a\x00b"],
)
def test_member_path_rejects_escapes_and_absolute_names(name: str) -> None:
    with pytest.raises(ArchiveRejected):
        member_path(name)


def test_extract_replaces_an_existing_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "old.txt").write_text("old")
    good = tmp_path / "good.zip"
    good.write_bytes(make_zip({"new.txt": b"new"}))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(make_zip({"../escape.txt": b"x"}))

    with pytest.raises(ArchiveRejected):
        extract_archive(bad, target, ArchiveLimits())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "dataset", "good.zip"]
    assert (target / "old.txt").read_text() == "old"

    extract_archive(good, target, ArchiveLimits())
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_extract_plain_tar_keeps_only_the_executable_bit(tmp_path: Path) -> None:
    script = tarfile.TarInfo("bin/run.sh")
    script.size, script.mode = 10, 0o4755
    data = tarfile.TarInfo("data.txt")
    data.size, data.mode = 4, 0o600
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as bundle:
        bundle.addfile(script, io.BytesIO(b"#!/bin/sh\n"))
        bundle.addfile(data, io.BytesIO(b"data"))
    archive = tmp_path / "tools"
    archive.write_bytes(buffer.getvalue())
    target = tmp_path / "out"

    extract_archive(archive, target, ArchiveLimits())

    assert (target / "bin" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((target / "bin" / "run.sh").stat().st_mode) == 0o755
    assert not (target / "data.txt").stat().st_mode & 0o111


def test_extract_rejects_a_file_that_is_no_archive(tmp_path: Path) -> None:
    archive = tmp_path / "plain"
    archive.write_bytes(b"just some text, not an archive" * 100)
    with pytest.raises(ArchiveRejected, match="neither a zip nor a tar"):
        extract_archive(archive, tmp_path / "out", ArchiveLimits())
    assert not (tmp_path / "out").exists()


def test_extract_rejects_a_corrupt_zip(tmp_path: Path) -> None:
    data = bytearray(make_zip({"a.txt": b"hello world" * 1000}))
    data[40:60] = bytes(20)
    archive = tmp_path / "broken.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveRejected):
        extract_archive(archive, tmp_path / "out", ArchiveLimits())
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / ".out.extracting").exists()
