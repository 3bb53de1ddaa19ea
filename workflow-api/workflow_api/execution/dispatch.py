"""The queue's dispatch: jobs started in FIFO order, at most `max_running` at a time.

One scheduler task on the event loop waits for a wake-up (a submit from a request thread, a job
that ended), then takes the oldest accepted jobs (`next_queued`) while there is room, each run as
a task of its own (`execute`). Request threads reach the loop through `wake` and `call`;
`cancel` stops a running job's task for a dismissal and waits until it has ended.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

NextQueued = Callable[[set[str]], str | None]
Execute = Callable[[str, bool], Coroutine[Any, Any, None]]
CALL_TIMEOUT_SECONDS = 120  # how long a request thread waits for the loop (a dismissal)


class Dispatcher:
    def __init__(self, *, next_queued: NextQueued, execute: Execute, max_running: int) -> None:
        self._next_queued = next_queued  # blocking (database): called in a worker thread
        self._execute = execute  # (job id, resumed)
        self._max_running = max_running
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dismissing: set[str] = set()
        self._wakeup = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None

    # --- event loop ----------------------------------------------------------------------------

    def attach(self) -> None:
        """Bind to the running loop (before anything is dispatched)."""
        self.loop = asyncio.get_running_loop()

    def start(self, resumed: list[str]) -> None:
        """Follow the jobs recovery resumed, then start scheduling the queue."""
        for job_id in resumed:
            self._start_task(job_id, resumed=True)
        self._scheduler = asyncio.create_task(self._schedule(), name="job-scheduler")
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop scheduling and cancel every running job's task (not a dismissal)."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel(self, job_id: str) -> None:
        """Dismissal of a running job: cancel its task and wait until it has ended."""
        task = self._running.get(job_id)
        if task is None:
            return
        self._dismissing.add(job_id)
        task.cancel()
        await asyncio.wait([task])

    def dismissing(self, job_id: str) -> bool:
        """Whether the job's task is being cancelled by a dismissal (not by a shutdown)."""
        return job_id in self._dismissing

    # --- request threads -----------------------------------------------------------------------

    def wake(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._wakeup.set)

    def call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` on the loop and wait for it."""
        assert self.loop is not None, "the job manager is not started"
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=CALL_TIMEOUT_SECONDS)

    # --- scheduling ----------------------------------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while len(self._running) < self._max_running:
                job_id = await asyncio.to_thread(self._next_queued, set(self._running))
                if job_id is None:
                    break
                self._start_task(job_id, resumed=False)

    def _start_task(self, job_id: str, *, resumed: bool) -> None:
        task = asyncio.create_task(self._execute(job_id, resumed), name=f"job-{job_id}")
        self._running[job_id] = task
        task.add_done_callback(functools.partial(self._finished_task, job_id))

    def _finished_task(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._dismissing.discard(job_id)
        self._wakeup.set()
