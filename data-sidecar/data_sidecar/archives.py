"""Safe extraction of zip and tar archives (plain, gzip, bzip2, xz), detected by content.

Every member name is checked before anything is written: no absolute paths, no `..`, no links or
device files. The number of entries and the real number of bytes written are bounded, so a zip
bomb stops at the limit whatever its headers claim. Extraction goes into a fresh directory next to
the target, which replaces the target only when everything succeeded; on any failure it is removed.
"""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from data_sidecar.transport import CHUNK_SIZE
from workflow_contracts.manifest import ArchiveLimits

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
)


class ArchiveRejected(ValueError):
    """The archive is unsafe, too big, or not an archive; the message says why."""


def member_path(name: str) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive's root itself."""
    if "\x00" in name:
        raise ArchiveRejected(f"member {name!r} has a NUL byte in its name")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise ArchiveRejected(f"member {name!r} has an absolute path")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveRejected(f"member {name!r} points outside the archive")
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """Counts entries and real bytes written against the archive limits."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self.entries = 0
        self.size = 0

    def add_entry(self) -> None:
        self.entries += 1
        if self.entries > self._limits.max_files:
            raise ArchiveRejected(f"more than {self._limits.max_files} entries")

    def add_bytes(self, count: int) -> None:
        self.size += count
        if self.size > self._limits.max_total_size:
            raise ArchiveRejected(f"more than {self._limits.max_total_size} bytes once extracted")


def _copy(source: IO[bytes], target: Path, budget: _Budget) -> None:
    with target.open("wb") as output:
        while chunk := source.read(CHUNK_SIZE):
            budget.add_bytes(len(chunk))
            output.write(chunk)


def _file_target(root: Path, relative: PurePosixPath | None, name: str) -> Path:
    if relative is None:
        raise ArchiveRejected(f"member {name!r} is a file without a name")
    target = root.joinpath(*relative.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise ArchiveRejected(f"member {name!r} is both a file and a directory")
    return target


def _make_executable_if(target: Path, mode: int) -> None:
    if mode & stat.S_IXUSR:
        target.chmod(0o755)


def _extract_zip(archive: Path, root: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        if len(members) > limits.max_files:
            raise ArchiveRejected(f"more than {limits.max_files} entries")
        declared = sum(member.file_size for member in members)
        if declared > limits.max_total_size:
            raise ArchiveRejected(f"more than {limits.max_total_size} bytes once extracted")
        for member in members:
            budget.add_entry()
            relative = member_path(member.filename)
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveRejected(f"member {member.filename!r} is a symbolic link")
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ArchiveRejected(f"member {member.filename!r} is not a file or directory")
            if member.is_dir() or stat.S_ISDIR(mode):
                if relative is not None:
                    root.joinpath(*relative.parts).mkdir(parents=True, exist_ok=True)
                continue
            target = _file_target(root, relative, member.filename)
            with bundle.open(member) as source:
                _copy(source, target, budget)
            _make_executable_if(target, mode)


def _extract_tar(archive: Path, root: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)
    with tarfile.open(archive, mode="r:*") as bundle:
        for member in bundle:
            budget.add_entry()
            relative = member_path(member.name)
            if member.issym() or member.islnk():
                raise ArchiveRejected(f"member {member.name!r} is a link")
            if member.isdir():
                if relative is not None:
                    root.joinpath(*relative.parts).mkdir(parents=True, exist_ok=True)
                continue
            if not member.isreg():
                raise ArchiveRejected(f"member {member.name!r} is not a file or directory")
            if budget.size + member.size > limits.max_total_size:
                raise ArchiveRejected(f"more than {limits.max_total_size} bytes once extracted")
            target = _file_target(root, relative, member.name)
            source = bundle.extractfile(member)
            if source is None:
                raise ArchiveRejected(f"member {member.name!r} cannot be read")
            with source:
                _copy(source, target, budget)
            _make_executable_if(target, member.mode)


def _extractor(archive: Path) -> Callable[[Path, Path, ArchiveLimits], None]:
    with archive.open("rb") as handle:
        head = handle.read(4)
    if head in ZIP_MAGIC:
        return _extract_zip
    if tarfile.is_tarfile(archive):
        return _extract_tar
    raise ArchiveRejected("is neither a zip nor a tar archive")


def extract_archive(archive: Path, target: Path, limits: ArchiveLimits) -> None:
    """Extract `archive` into the new directory `target`, all or nothing.

    Raises `ArchiveRejected` for an unsafe, oversized, corrupt or unknown archive, `OSError` for
    trouble with the local disk. `target` is replaced if it exists.
    """
    scratch = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            _extractor(archive)(archive, scratch, limits)
        except _CORRUPT as error:
            raise ArchiveRejected(f"is corrupt: {error}") from error
        except (RuntimeError, NotImplementedError) as error:  # encrypted or unknown compression
            raise ArchiveRejected(f"cannot be extracted: {error}") from error
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
