"""The one secret-file writer: never a partial file, 0600, and "create if absent" agreed on by
concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from workflow_common.private_files import write_secret_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_secret_file_is_private_and_holds_the_data(tmp_path: Path) -> None:
    target = tmp_path / "key"
    assert write_secret_file(target, b"secret") is True
    assert target.read_bytes() == b"secret"
    assert _mode(target) == 0o600
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_secret_file_is_private_even_under_a_wide_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_secret_file(tmp_path / "key", b"secret")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "key") == 0o600


def test_writing_again_replaces_the_contents(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_secret_file(target, b"old")
    assert write_secret_file(target, b"new") is True
    assert target.read_bytes() == b"new"
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_write_that_fails_midway_keeps_the_old_contents_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "key"
    write_secret_file(target, b"old contents")

    def crash(_descriptor: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)  # after the data was written, before the rename
    with pytest.raises(OSError, match="disk gone"):
        write_secret_file(target, b"new contents that never land")
    assert target.read_bytes() == b"old contents"
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_failed_first_write_leaves_no_file_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(_source: object, _target: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="rename refused"):
        write_secret_file(tmp_path / "key", b"secret")
    assert list(tmp_path.iterdir()) == []


def test_if_absent_keeps_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_secret_file(target, b"first")
    assert write_secret_file(target, b"second", if_absent=True) is False
    assert target.read_bytes() == b"first"
    assert sorted(tmp_path.iterdir()) == [target]


def _create(target: str, value: bytes, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()
    write_secret_file(Path(target), value, if_absent=True)


def test_concurrent_creators_agree_on_one_value(tmp_path: Path) -> None:
    target = tmp_path / "key"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(8)
    values = [os.urandom(32) for _ in range(8)]
    workers = [
        context.Process(target=_create, args=(str(target), value, start)) for value in values
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0] * 8
    assert target.read_bytes() in values
    assert _mode(target) == 0o600
    assert sorted(tmp_path.iterdir()) == [target]
