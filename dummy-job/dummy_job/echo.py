"""`dummy-job echo`: after an optional `pause`, write the literal `message` to output `echo`."""

from __future__ import annotations

import logging
import time

from dummy_job.errors import JobInputError
from dummy_job.workspace import Workspace

log = logging.getLogger(__name__)

INPUT_IDS = ("message", "pause")
OUTPUT_IDS = ("echo",)
DEFAULT_PAUSE = 0.0
MAX_PAUSE = 3600.0


def run(workspace: Workspace) -> int:
    literals = workspace.literals()
    message = literals.string("message")
    pause = literals.number("pause", DEFAULT_PAUSE, 0.0, MAX_PAUSE)
    try:
        data = message.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as error:
        raise JobInputError("message", "is not valid text") from error
    if pause:
        workspace.report_progress(0, f"pausing {pause:g} s")
        time.sleep(pause)
    workspace.output_path("echo").write_bytes(data)
    log.info("echoed %d bytes", len(data))
    workspace.report_progress(100, "done")
    return 0
