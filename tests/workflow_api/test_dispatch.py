"""The queue's dispatch (`execution/dispatch.py`) with stand-in callables: order, limit, cancel."""

from __future__ import annotations

import asyncio

from workflow_api.execution.dispatch import Dispatcher


class Queue:
    """Accepted job ids in FIFO order; a job leaves the queue when it is started."""

    def __init__(self, *job_ids: str) -> None:
        self.accepted = list(job_ids)
        self.started: list[tuple[str, bool]] = []
        self.release = asyncio.Event()

    def next_queued(self, exclude: set[str]) -> str | None:
        waiting = [job_id for job_id in self.accepted if job_id not in exclude]
        return waiting[0] if waiting else None

    async def execute(self, job_id: str, resumed: bool) -> None:
        self.accepted = [other for other in self.accepted if other != job_id]
        self.started.append((job_id, resumed))
        await self.release.wait()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_jobs_start_oldest_first_and_never_more_than_the_limit() -> None:
    async def scenario() -> None:
        queue = Queue("a", "b", "c")
        dispatcher = Dispatcher(next_queued=queue.next_queued, execute=queue.execute, max_running=2)
        dispatcher.attach()
        dispatcher.start(resumed=["r"])
        await settle()
        assert queue.started == [("r", True), ("a", False)]  # the resumed one takes a place
        queue.release.set()
        await settle()
        assert queue.started == [("r", True), ("a", False), ("b", False), ("c", False)]
        await dispatcher.stop()

    asyncio.run(scenario())


def test_a_cancelled_job_counts_as_dismissed_until_its_task_has_ended() -> None:
    async def scenario() -> None:
        queue = Queue("a")
        seen: list[bool] = []

        async def execute(job_id: str, resumed: bool) -> None:
            try:
                await queue.execute(job_id, resumed)
            except asyncio.CancelledError:
                seen.append(dispatcher.dismissing(job_id))
                raise

        dispatcher = Dispatcher(next_queued=queue.next_queued, execute=execute, max_running=1)
        dispatcher.attach()
        dispatcher.start(resumed=[])
        await settle()
        await dispatcher.cancel("a")
        assert seen == [True]
        assert not dispatcher.dismissing("a")
        await dispatcher.cancel("a")  # no task any more: nothing to do
        await dispatcher.stop()

    asyncio.run(scenario())
