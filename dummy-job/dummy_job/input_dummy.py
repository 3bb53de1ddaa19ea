"""`dummy-job input-dummy`: list the file inputs and transform them.

Inputs: `document` (file), `dataset` (archive, extracted to a directory), `settings` (optional
env-file whose GREETING and REPEAT arrive as environment variables; read from the file when run
by hand without them). Outputs: `listing` (text file) and `transformed` (directory) holding
`document.upper.txt`, `checksums/<dataset path>.sha256` and `greeting.txt`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from dummy_job.errors import JobInputError
from dummy_job.workspace import Workspace

log = logging.getLogger(__name__)

INPUT_IDS = ("settings", "dataset", "document")
OUTPUT_IDS = ("listing", "transformed")
DEFAULT_GREETING = "Hello"
DEFAULT_REPEAT = 1
MAX_REPEAT = 1000
CHUNK_SIZE = 1024 * 1024


def run(workspace: Workspace) -> int:
    document = _required(workspace, "document", directory=False)
    dataset = _required(workspace, "dataset", directory=True)
    greeting, repeat = _settings(workspace)
    workspace.report_progress(5, "inputs found")

    dataset_files = sorted(_walk(dataset))
    listing = [
        "inputs of input-dummy",
        f"document: file, {document.stat().st_size} bytes, sha256 {_sha256(document)}",
        f"dataset: directory, {len(dataset_files)} files",
        *(
            f"  {relative}: {(dataset / relative).stat().st_size} bytes"
            for relative in dataset_files
        ),
    ]
    settings = workspace.input_path("settings")
    if settings.is_file():
        listing.append(f"settings: file, {settings.stat().st_size} bytes")
    else:
        listing.append("settings: not given")
    listing.append(f"GREETING={greeting!r} REPEAT={repeat}")
    workspace.output_path("listing").write_text("\n".join(listing) + "\n", encoding="utf-8")
    workspace.report_progress(30, "listing written")

    transformed = workspace.output_path("transformed")
    transformed.mkdir(exist_ok=True)
    _upper_case(document, transformed / "document.upper.txt")
    workspace.report_progress(50, "document transformed")
    for number, relative in enumerate(dataset_files, start=1):
        checksum = transformed / "checksums" / f"{relative}.sha256"
        checksum.parent.mkdir(parents=True, exist_ok=True)
        checksum.write_text(f"{_sha256(dataset / relative)}  {relative}\n", encoding="utf-8")
        workspace.report_progress(50 + 40 * number // len(dataset_files), f"hashed {relative}")
    (transformed / "greeting.txt").write_text(
        "".join(f"{greeting}\n" for _ in range(repeat)), encoding="utf-8"
    )
    log.info("listed %d dataset files", len(dataset_files))
    workspace.report_progress(100, "done")
    return 0


def _required(workspace: Workspace, input_id: str, *, directory: bool) -> Path:
    path = workspace.input_path(input_id)
    if directory and path.is_dir():
        return path
    if not directory and path.is_file():
        return path
    expected = "an extracted archive directory" if directory else "a file"
    raise JobInputError(input_id, f"is required: expected {expected} at {path}")


def _settings(workspace: Workspace) -> tuple[str, int]:
    variables: Mapping[str, str] = workspace.environment
    settings = workspace.input_path("settings")
    if "GREETING" not in variables and "REPEAT" not in variables and settings.is_file():
        variables = _read_env_file(settings)
    greeting = variables.get("GREETING", DEFAULT_GREETING)
    try:
        repeat = int(variables.get("REPEAT", DEFAULT_REPEAT))
    except ValueError as error:
        raise JobInputError("settings", "REPEAT must be a whole number") from error
    if not 0 <= repeat <= MAX_REPEAT:
        raise JobInputError("settings", f"REPEAT must be between 0 and {MAX_REPEAT}")
    return greeting, repeat


def _read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines; comments, blanks and `export ` skipped, matching quotes removed."""
    variables: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        text = line.strip().removeprefix("export ").strip()
        name, separator, value = text.partition("=")
        if not separator or text.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name.strip()] = value
    return variables


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of the regular files under `root`, without following links."""
    for current, directories, files in os.walk(root):
        directories.sort()
        for name in files:
            path = Path(current) / name
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _upper_case(source: Path, target: Path) -> None:
    with (
        source.open(encoding="utf-8", errors="replace") as reader,
        target.open("w", encoding="utf-8") as writer,
    ):
        for line in reader:
            writer.write(line.upper())
