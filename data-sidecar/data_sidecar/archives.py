"""Safe extraction of zip and tar archives (plain, gzip, bzip2, xz), detected by content.

Every member name is checked before anything is written: no absolute paths, no `..`, no links or
device files. The number of entries and the real number of bytes written are bounded, so a zip
bomb stops at the limit whatever its headers claim. The byte bound is the smallest of the per-job
archive limit, the consumer's free storage quota and the free disk space (`extraction_bound`).
Extraction goes into a fresh directory next to the target, which replaces the target only when
everything succeeded; on any failure it is removed.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from data_sidecar.transport import CHUNK_SIZE
from workflow_contracts.manifest import ArchiveLimits, StorageBudget, format_size

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


@dataclass(frozen=True)
class SizeBound:
    """How many bytes an extraction may write, and what sets that number."""

    size: int
    reason: str

    def refusal(self) -> ArchiveRejected:
        return ArchiveRejected(
            f"expands to more than {self.size} bytes ({format_size(self.size)}), {self.reason}"
        )


def free_disk_bytes(reading: os.statvfs_result) -> int:
    """What an unprivileged process may still write on the filesystem of a `statvfs` reading."""
    return int(reading.f_bavail) * int(reading.f_frsize)


def extraction_bound(
    limits: ArchiveLimits, storage: StorageBudget | None, disk_free: int, already: int = 0
) -> SizeBound:
    """The smallest of the per-job limit, the free quota (less `already` extracted by earlier
    archives of the job) and the free disk space."""
    bounds = [SizeBound(limits.max_total_size, "the per-job archive limit")]
    if storage is not None:
        free = max(storage.free_bytes - already, 0)
        quota = format_size(storage.quota_bytes)
        bounds.append(SizeBound(free, f"the free part of the {quota} storage quota"))
    bounds.append(SizeBound(max(disk_free, 0), "the free disk space of the workspace"))
    return min(bounds, key=lambda bound: bound.size)


def default_bound(limits: ArchiveLimits) -> SizeBound:
    return SizeBound(limits.max_total_size, "the per-job archive limit")


class _Budget:
    """Counts entries and real bytes written against the archive limits and the size bound."""

    def __init__(self, limits: ArchiveLimits, bound: SizeBound) -> None:
        self._limits = limits
        self.bound = bound
        self.entries = 0
        self.size = 0

    def add_entry(self) -> None:
        self.entries += 1
        if self.entries > self._limits.max_files:
            raise ArchiveRejected(f"more than {self._limits.max_files} entries")

    def add_bytes(self, count: int) -> None:
        self.size += count
        self.check(self.size)

    def check(self, size: int) -> None:
        if size > self.bound.size:
            raise self.bound.refusal()


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


def _extract_zip(archive: Path, root: Path, budget: _Budget, limits: ArchiveLimits) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        if len(members) > limits.max_files:
            raise ArchiveRejected(f"more than {limits.max_files} entries")
        budget.check(sum(member.file_size for member in members))
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


def _extract_tar(archive: Path, root: Path, budget: _Budget, limits: ArchiveLimits) -> None:
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
            budget.check(budget.size + member.size)
            target = _file_target(root, relative, member.name)
            source = bundle.extractfile(member)
            if source is None:
                raise ArchiveRejected(f"member {member.name!r} cannot be read")
            with source:
                _copy(source, target, budget)
            _make_executable_if(target, member.mode)


def _extractor(archive: Path) -> Callable[[Path, Path, _Budget, ArchiveLimits], None]:
    with archive.open("rb") as handle:
        head = handle.read(4)
    if head in ZIP_MAGIC:
        return _extract_zip
    if tarfile.is_tarfile(archive):
        return _extract_tar
    raise ArchiveRejected("is neither a zip nor a tar archive")


def extract_archive(
    archive: Path, target: Path, limits: ArchiveLimits, bound: SizeBound | None = None
) -> int:
    """Extract `archive` into the new directory `target`, all or nothing; returns the bytes written.

    At most `bound` bytes (default: the per-job archive limit) are written. Raises
    `ArchiveRejected` for an unsafe, oversized, corrupt or unknown archive, `OSError` for trouble
    with the local disk. `target` is replaced if it exists.
    """
    budget = _Budget(limits, bound or default_bound(limits))
    scratch = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            _extractor(archive)(archive, scratch, budget, limits)
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
    return budget.size
