"""`python -m workflow_api` with a cProfile in every thread; the merged stats go to $PROFILE_OUT.

Used by the benchmarks' `--profile-server FILE`. Every thread gets its own profiler (request
threads, `asyncio.to_thread` workers, the event loop), so the stats cover the whole server. In
threads, `tottime` is wall time and includes waiting for the GIL: read it for where time goes
and compare the CPU seconds the benchmarks report for how much. On SIGTERM the server shuts down
and the stats are written.

    python -m pstats FILE   (then: sort tottime / stats 30, or sort cumtime)
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sys
import threading
from types import FrameType
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_in_thread(_frame: FrameType, _event: str, _arg: Any) -> None:
    """The first profile event of a new thread: give the thread its own profiler."""
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()  # replaces this hook for the rest of the thread


def _exit_on_sigterm(_signal: int, _frame: FrameType | None) -> None:
    # uvicorn re-raises the SIGTERM it handled once it has shut down; exit through `finally`.
    raise SystemExit(0)


def main() -> None:
    output = os.environ["PROFILE_OUT"]
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    threading.setprofile(_start_in_thread)
    main_profile = cProfile.Profile()
    main_profile.enable()
    from workflow_api.__main__ import main as serve  # noqa: PLC0415 - profiled from here on

    try:
        serve(sys.argv[1:])
    finally:
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        with _lock:
            profiles = list(_profiles)
        for profile in profiles:
            profile.snapshot_stats()
            stats.add(profile)
        stats.dump_stats(output)


if __name__ == "__main__":
    main()
