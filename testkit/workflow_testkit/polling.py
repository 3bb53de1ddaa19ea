"""Waiting for a condition of a running server (provisioner, workflow-api, connector), with the
time it may take: the one poll helper of the tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    check: Callable[[], T | None],
    timeout: float = 30,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """`check()`'s first truthy result; an `AssertionError` naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
