"""The consumer lifecycle: deploy on a grant's demand, supervise, tear down when idle.

    deploying ◄─► ready ──► tearing_down ──► removed ──► (deploying again on a new grant)

Teardown is a step like the others: it purges the consumer's data through its API once, asks
the deployer to remove the deployment, and stays `tearing_down` while the deployer says it is
still going (a Kubernetes namespace that is terminating), so a slow removal never holds up the
other consumers and grants; each later pass asks again. A consumer's failures back off in
memory (`backoff`; a restart retries at once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from provisioner.deployers.base import ConsumerSpec, Deployer, RemovesInSteps, admin_endpoint
from provisioner.grants.models import Consumer, ConsumerState
from provisioner.reconciler.store import ReconcilerStore
from provisioner.tokens.issuing import workflow_api_audience
from provisioner.workflow_apis import WorkflowApiClient
from workflow_common.clock import utcnow
from workflow_common.retry import RetriedWorkError, TemporaryError

log = logging.getLogger(__name__)


class DeploymentFailedError(TemporaryError):
    """The deployer answered `failed` (its message says why); retried with backoff."""


def spec_of(consumer: Consumer, grants: tuple[str, ...] = ()) -> ConsumerSpec:
    return ConsumerSpec(consumer.id, consumer.slug, workflow_api_audience(consumer.slug), grants)


def api_endpoint(consumer: Consumer) -> str | None:
    """Where the provisioner calls this consumer's workflow-api (see deployers/base.py)."""
    return admin_endpoint(consumer.endpoint, consumer.detail)


class ConsumerLifecycle:
    """See the module docstring; `backoff(failures)` is the loop's backoff policy."""

    def __init__(
        self,
        *,
        store: ReconcilerStore,
        deployer: Deployer,
        workflow_apis: WorkflowApiClient,
        slug_of: Callable[[str], str],
        grace: timedelta,
        supervise_every: timedelta,
        backoff: Callable[[int], timedelta],
    ) -> None:
        self._store = store
        self._deployer = deployer
        self._apis = workflow_apis
        self._slug_of = slug_of
        self._grace = grace
        self._supervise_every = supervise_every
        self._backoff = backoff
        # consumer id -> (failures in a row, not before): per-consumer backoff of supervision
        self.not_before: dict[str, tuple[int, datetime]] = {}

    def backing_off_until(self, consumer_id: str, now: datetime) -> datetime:
        """`now` unless the consumer's deployment is backing off."""
        return self.not_before.get(consumer_id, (0, now))[1]

    def demanded(self, consumer_id: str) -> Consumer | None:
        """The consumer's row for a grant that needs it: created (or revived from `removed`) as
        `deploying`; None while an earlier deployment of it is still being removed."""
        consumer = self._store.new_or_revived_consumer(consumer_id, self._slug_of(consumer_id))
        if consumer.state is ConsumerState.TEARING_DOWN:
            if not self.tear_down(consumer):
                return None
            consumer = self._store.new_or_revived_consumer(consumer_id, consumer.slug)
        if consumer.state is ConsumerState.DEPLOYING and not consumer.detail:
            log.info("consumer %s: deploying its workflow-api", consumer_id)
        return consumer

    def deploy(self, consumer: Consumer) -> Consumer:
        spec = spec_of(consumer, self._store.live_assets(consumer.id))
        status = self._deployer.deploy(spec, dict(consumer.detail))
        state = ConsumerState.READY if status.state == "ready" else ConsumerState.DEPLOYING
        if state is not consumer.state:
            log.info("consumer %s is %s %s", consumer.id, state.value, status.endpoint or "")
        if status.state == "failed":
            log.warning("consumer %s: deployment failed: %s", consumer.id, status.message)
        updated = self._store.update_consumer(
            consumer,
            state=state,
            endpoint=status.endpoint,
            detail=status.detail,
            message=status.message,
            checked=utcnow(),
        )
        if status.state == "failed":
            raise DeploymentFailedError(f"deployment failed: {status.message}")
        return updated

    def look_after_all(self, stopping: Callable[[], bool]) -> None:
        now = utcnow()
        consumers, counting = self._store.consumers_to_look_after()
        for consumer in consumers:
            if stopping():
                return
            failures, not_before = self.not_before.get(consumer.id, (0, now))
            if now < not_before:
                continue
            try:
                self._look_after(consumer, counting.get(consumer.id, 0), now)
            except Exception as error:  # one consumer's failure must never stop the others
                if not isinstance(error, RetriedWorkError):
                    log.exception("consumer %s: unexpected error", consumer.id)
                failures += 1
                self.not_before[consumer.id] = (failures, now + self._backoff(failures))
                self._record_error(consumer, f"{type(error).__name__}: {error}")
            else:
                self.not_before.pop(consumer.id, None)

    def _look_after(self, consumer: Consumer, counting_grants: int, now: datetime) -> None:
        if consumer.state is ConsumerState.TEARING_DOWN:
            self.tear_down(consumer)
        elif counting_grants == 0:
            idle_since = consumer.idle_since if consumer.idle_since else now
            if consumer.idle_since is None:
                self._store.update_consumer(consumer, idle_since=now)
            if now - idle_since >= self._grace:
                self.tear_down(
                    self._store.update_consumer(consumer, state=ConsumerState.TEARING_DOWN)
                )
        elif consumer.state is ConsumerState.DEPLOYING or self._supervision_due(consumer, now):
            busy = consumer
            if busy.idle_since is not None:
                busy = self._store.update_consumer(busy, idle_since=None)
            self.deploy(busy)

    def _record_error(self, consumer: Consumer, message: str) -> None:
        try:
            self._store.update_consumer(consumer, message=message)
        except Exception:
            log.exception("consumer %s: could not record the error", consumer.id)

    def _supervision_due(self, consumer: Consumer, now: datetime) -> bool:
        checked = consumer.checked if consumer.checked else None
        return checked is None or now - checked >= self._supervise_every

    def _remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> str | None:
        """One removal step where the deployer has them, else its (bounded) `remove`."""
        if isinstance(self._deployer, RemovesInSteps):
            return self._deployer.removal_step(spec, detail)
        self._deployer.remove(spec, detail)
        return None

    def tear_down(self, consumer: Consumer) -> bool:
        """One teardown step; True once the consumer is `removed`. Its data is purged through
        its API on the first step only (the endpoint is forgotten then)."""
        spec = spec_of(consumer)
        endpoint = api_endpoint(consumer)
        if endpoint and consumer.state is not ConsumerState.REMOVED:
            try:
                self._apis.purge(endpoint, spec.token_audience)
            except RetriedWorkError as error:
                log.warning(
                    "consumer %s: could not purge its data through its API: %s", consumer.id, error
                )
        waiting = self._remove(spec, dict(consumer.detail))
        if waiting is not None:
            if consumer.endpoint is not None or consumer.message != waiting:
                detail = {**consumer.detail, "admin_endpoint": None}
                self._store.update_consumer(consumer, endpoint=None, detail=detail, message=waiting)
            return False
        self._store.update_consumer(
            consumer,
            state=ConsumerState.REMOVED,
            endpoint=None,
            detail={},
            idle_since=None,
            message="removed",
        )
        log.info("consumer %s: deployment and data removed", consumer.id)
        return True
