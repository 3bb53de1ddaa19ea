"""The workflow-api's log file in each consumer's data directory, and its last lines (which a
failed start's message quotes)."""

from __future__ import annotations

import os
from pathlib import Path

LOG_FILE = "workflow-api.log"
SPARE_LOG_FILE = ".spare-workflow-api.log"
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 8192


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
