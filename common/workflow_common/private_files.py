"""Files only this service's user can read: data files 0600, directories 0700.

Databases, uploads, logs, stored objects and keys hold one consumer's data and credentials, so
nobody else on the machine may read them. Two layers, so that neither alone is relied on:

- `restrict_umask()`, once at each service's entry point (`serve`, `dev`): whatever a library
  creates (SQLite's `-wal`/`-shm`, temporary files, a worker's outputs) starts private;
- the helpers below where the services create files and directories themselves, which also
  tighten a directory that existed before with a wider mode.

Keys and other secrets are written by `write_secret_file` only: never partly visible, durable once
it returns, and with `if_absent` the first of several concurrent writers wins for all of them.

`workspace_dir` is the one place that decides what a worker's workspace looks like; a runner
that starts workers under another user changes it there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def restrict_umask() -> None:
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """`path` and its missing parents as 0700 directories; an existing `path` is tightened."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
    _tighten(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` exists as a 0600 file (created empty when missing, tightened when wider)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


def open_private(path: Path, *, append: bool = True) -> BinaryIO:
    """`path` opened for writing (appending, or truncated), created 0600 when missing."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), "ab" if append else "wb")


def write_private(path: Path, data: bytes) -> None:
    with open_private(path, append=False) as handle:
        handle.write(data)


def write_secret_file(path: Path, data: bytes, *, if_absent: bool = False) -> bool:
    """Write `data` to `path` (mode 0600) so that no reader ever sees a part of it.

    The data goes to a new file in the same directory, reaches the disk, and then takes `path`'s
    place in one step: renamed over it, or with `if_absent` linked to it only when `path` does not
    exist yet (an existing file is kept, whoever wrote it). The directory is flushed too, so the
    new name survives a crash. True when `data` is now at `path`, False when `if_absent` kept an
    existing file. If anything fails, `path` is as it was and no temporary file is left.
    """
    directory = path.parent
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if if_absent:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
        else:
            os.replace(temporary, path)
        _sync_directory(directory)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):  # renamed already
            os.unlink(temporary)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def workspace_dir(path: Path) -> Path:
    """A new, empty workspace for one worker: private to this user, who also runs the worker."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True)
    _tighten(path, DIRECTORY_MODE)
    return path


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except OSError as error:  # not ours (a volume's root, say): keep going, but say so
        log.warning("cannot restrict %s to %o: %s", path, mode, error)
