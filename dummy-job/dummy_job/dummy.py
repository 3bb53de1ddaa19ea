"""`dummy-job dummy`: sleep for `duration` seconds with progress, write `result`, maybe fail."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from dummy_job.workspace import Workspace

log = logging.getLogger(__name__)

INPUT_IDS = ("duration", "fail")
OUTPUT_IDS = ("result",)
DEFAULT_DURATION = 2.0
MAX_DURATION = 3600.0
DEFAULT_FAIL = False
EXIT_REQUESTED_FAILURE = 3
SECONDS_PER_STEP = 0.5
MAX_STEPS = 100


def run(workspace: Workspace) -> int:
    literals = workspace.literals()
    duration = literals.number("duration", DEFAULT_DURATION, 0.0, MAX_DURATION)
    fail = literals.boolean("fail", DEFAULT_FAIL)
    started = datetime.now(UTC)
    log.info("dummy job: running for %g s (fail=%s)", duration, fail)
    workspace.report_progress(0, "started")
    steps = max(1, min(MAX_STEPS, math.ceil(duration / SECONDS_PER_STEP)))
    for step in range(1, steps + 1):
        time.sleep(duration / steps)
        workspace.report_progress(90 * step // steps, f"worked {duration * step / steps:.1f} s")
    finished = datetime.now(UTC)
    summary = (
        "dummy job summary\n"
        f"started: {started.isoformat()}\n"
        f"finished: {finished.isoformat()}\n"
        f"duration: {duration:g} s\n"
        f"fail: {str(fail).lower()}\n"
    )
    workspace.output_path("result").write_text(summary, encoding="utf-8")
    log.info("wrote output result")
    if fail:
        log.error("failing on purpose, as the input 'fail' asked")
        return EXIT_REQUESTED_FAILURE
    workspace.report_progress(100, "done")
    return 0
