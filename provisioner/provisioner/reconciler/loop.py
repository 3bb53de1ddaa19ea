"""The reconciler: one thread, owned by the lifespan, moving every record one step at a time.

Each pass: expire grants whose contract ended → advance due grants (`grant_steps`: deploy the
consumer, grant the asset in its workflow-api, call EDC back; or revoke and call back) → look
after consumers (`consumers`: supervise, tear down idle ones after the grace period, one step
of a teardown at a time). Every step is persisted (`store`) before the next; a crash at any
point resumes from the database. Request handlers only insert grants or mark them revoking; the
reconciler writes with conditional updates, so neither overwrites the other.

Failures stay with their record: any exception while handling one grant or one consumer is
caught, recorded on that row (`last_error`, `message`) and retried after an exponential backoff
of its own (`backoff`, capped at MAX_BACKOFF); the pass goes on with the others. A grant retries
until its callback deadline, then is revoked; a consumer's backoff lives in memory (a restart
retries at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from provisioner.deployers.base import Deployer
from provisioner.grants.models import GrantState
from provisioner.metrics import Metrics
from provisioner.reconciler.consumers import ConsumerLifecycle
from provisioner.reconciler.grant_steps import DEPLOY_POLL, EdcSide, GrantSteps, GrantTiming
from provisioner.reconciler.store import ReconcilerStore
from provisioner.slugs import consumer_slug
from provisioner.workflow_apis import WorkflowApiClient
from workflow_common.clock import utcnow

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(seconds=30)

__all__ = ["DEPLOY_POLL", "MAX_BACKOFF", "Reconciler", "ReconcilerTiming", "backoff"]


def backoff(attempts: int) -> timedelta:
    return min(timedelta(milliseconds=25) * (1 << min(attempts, 20)), MAX_BACKOFF)


@dataclass(frozen=True)
class ReconcilerTiming:
    """How often and how long: the loop's interval, the consumers' supervision and idle grace,
    the grants' callback deadline and delay."""

    interval: timedelta
    supervise_every: timedelta
    grace: timedelta
    callback_deadline: timedelta
    callback_delay: timedelta


class Reconciler:
    """See the module docstring."""

    def __init__(
        self,
        *,
        engine: Engine,
        deployer: Deployer,
        workflow_apis: WorkflowApiClient,
        edc: EdcSide,
        metrics: Metrics,
        timing: ReconcilerTiming,
        slug_of: Callable[[str], str] = consumer_slug,
    ) -> None:
        self._deployer = deployer
        self._apis = workflow_apis
        self._callbacks = edc.callbacks
        self._metrics = metrics
        self._timing = timing
        self._store = ReconcilerStore(engine, on_lost_race=self.wake)
        self._consumers = ConsumerLifecycle(
            store=self._store,
            deployer=deployer,
            workflow_apis=workflow_apis,
            slug_of=slug_of,
            grace=timing.grace,
            supervise_every=timing.supervise_every,
            backoff=backoff,
        )
        self._grants = GrantSteps(
            store=self._store,
            consumers=self._consumers,
            workflow_apis=workflow_apis,
            edc=edc,
            metrics=metrics,
            timing=GrantTiming(timing.callback_deadline, timing.callback_delay),
            backoff=backoff,
        )
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._deployer.prepare()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._deployer.close()

    def wake(self) -> None:
        self._wakeup.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("reconciler pass failed; retrying")
            self._wakeup.wait(self._seconds_to_next_work())
            self._wakeup.clear()

    # --- one pass ------------------------------------------------------------------------------

    def run_once(self) -> None:
        expired = self._store.expire(self._timing.callback_deadline)
        if expired:
            log.info("%d grant(s) expired", expired)
        for grant in self._store.due_grants():
            if self._stopping.is_set():
                return
            state = grant.state
            try:
                if state is GrantState.PROVISIONING:
                    self._grants.provision(grant)
                else:
                    self._grants.revoke(grant)
            except Exception as error:  # one grant's failure must never stop the others
                log.exception("grant %s: unexpected error while %s", grant.id, state.value)
                self._grants.record_crash(grant, error)
        self._consumers.look_after_all(self._stopping.is_set)
        self._update_gauges()

    def _seconds_to_next_work(self) -> float:
        now = utcnow()
        moments, changing = self._store.next_moments()
        candidates = [now + self._timing.interval, *moments]
        for consumer_id in changing:  # polled while they change, unless backing off
            not_before = self._consumers.backing_off_until(consumer_id, now)
            candidates.append(max(not_before, now + DEPLOY_POLL))
        return max((min(candidates) - now).total_seconds(), 0.0)

    def _update_gauges(self) -> None:
        active, by_state = self._store.counts()
        self._metrics.active_consumers.set(active)
        for state in GrantState:
            self._metrics.grants.labels(state.value).set(by_state.get(state, 0))
