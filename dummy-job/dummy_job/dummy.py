"""`dummy-job dummy`: sleep for `duration` seconds with progress, write `result`, maybe fail.

With `spawn_child` it also starts a child process that sleeps as long as the job, so a runner's
"stopping a job stops its whole process tree" can be checked for real.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from datetime import UTC, datetime

from dummy_job.workspace import Workspace

log = logging.getLogger(__name__)

INPUT_IDS = ("duration", "fail", "spawn_child")
OUTPUT_IDS = ("result",)
DEFAULT_DURATION = 2.0
MAX_DURATION = 3600.0
DEFAULT_FAIL = False
DEFAULT_SPAWN_CHILD = False
EXIT_REQUESTED_FAILURE = 3
SECONDS_PER_STEP = 0.5
MAX_STEPS = 100


def run(workspace: Workspace) -> int:
    literals = workspace.literals()
    duration = literals.number("duration", DEFAULT_DURATION, 0.0, MAX_DURATION)
    fail = literals.boolean("fail", DEFAULT_FAIL)
    spawn_child = literals.boolean("spawn_child", DEFAULT_SPAWN_CHILD)
    started = datetime.now(UTC)
    log.info("dummy job: running for %g s (fail=%s)", duration, fail)
    child = _spawn_child(duration) if spawn_child else None
    workspace.report_progress(0, "started")
    steps = max(1, min(MAX_STEPS, math.ceil(duration / SECONDS_PER_STEP)))
    for step in range(1, steps + 1):
        time.sleep(duration / steps)
        workspace.report_progress(90 * step // steps, f"worked {duration * step / steps:.1f} s")
    if child is not None:
        child.terminate()
        child.wait()
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


def _spawn_child(duration: float) -> subprocess.Popen[bytes]:
    """A child in the job's own process group that outlives nothing but the job itself."""
    child = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep({duration + 1!r})"],
        stdin=subprocess.DEVNULL,
    )
    log.info("started child process %d", child.pid)
    return child
