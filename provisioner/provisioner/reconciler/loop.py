"""The reconciler: one thread, owned by the lifespan, moving every record one step at a time.

Each pass: expire grants whose contract ended → advance due grants (deploy the consumer, grant the
asset in its workflow-api, call EDC back; or revoke and call back) → look after consumers
(supervise, tear down idle ones after the grace period). Every step is persisted before the next;
a crash at any point resumes from the database. Request handlers only insert grants or mark them
revoking; the reconciler writes with conditional updates, so neither overwrites the other.

Failures stay with their record: any exception while handling one grant or one consumer is
caught, recorded on that row (`last_error`, `message`) and retried after an exponential backoff
of its own (capped at MAX_BACKOFF); the pass goes on with the others. A grant retries until its
callback deadline, then is revoked; a consumer's backoff lives in memory (a restart retries at
once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from provisioner.deployers.base import ConsumerSpec, Deployer, admin_endpoint
from provisioner.edc.callbacks import (
    CallbackClient,
    CallbackConflictError,
    CallbackError,
    CallbackRejectedError,
    CallbackRetryableError,
    CallbackUnauthorizedError,
)
from provisioner.edc.management import ManagementError
from provisioner.grants.models import (
    Consumer,
    ConsumerState,
    Flavour,
    Grant,
    GrantState,
    as_utc,
    utcnow,
)
from provisioner.metrics import Metrics
from provisioner.slugs import consumer_slug
from provisioner.tokens.issuing import workflow_api_audience
from provisioner.workflow_apis import WorkflowApiClient, WorkflowApiError

log = logging.getLogger(__name__)

LIVE = [GrantState.PROVISIONING, GrantState.ACTIVE]
DEPLOY_POLL = timedelta(milliseconds=50)
MAX_BACKOFF = timedelta(seconds=30)

# (grant, consumer) -> (callback URL, body) for "provision" or "deprovision"; None: no callback
CallbackBuilder = Callable[[Grant, Consumer, str], tuple[str, dict[str, Any]] | None]
# transfer process id -> its state in EDC, or None when it cannot be asked
TransferState = Callable[[str], str | None]
# (transfer process id, reason): ask EDC to end a transfer we gave up on; raises on failure
TerminateTransfer = Callable[[str, str], None]


class SlugTakenError(Exception):
    """Another consumer already has this consumer's slug (the names of its deployment)."""


class DeploymentFailedError(Exception):
    """The deployer answered `failed` (its message says why); retried with backoff."""


# A provider transfer in one of these took our provision callback (we may have missed the answer).
PAST_PROVISIONING = {
    "PROVISIONED",
    "STARTING",
    "STARTED",
    "SUSPENDING",
    "SUSPENDED",
    "RESUMING",
    "RESUMED",
    "COMPLETING",
    "COMPLETED",
}
ENDED = {
    "TERMINATING",
    "TERMINATING_REQUESTED",
    "TERMINATED",
    "DEPROVISIONING",
    "DEPROVISIONING_REQUESTED",
    "DEPROVISIONED",
}


def spec_of(consumer: Consumer, grants: tuple[str, ...] = ()) -> ConsumerSpec:
    return ConsumerSpec(consumer.id, consumer.slug, workflow_api_audience(consumer.slug), grants)


def api_endpoint(consumer: Consumer) -> str | None:
    """Where the provisioner calls this consumer's workflow-api (see deployers/base.py)."""
    return admin_endpoint(consumer.endpoint, consumer.detail)


def backoff(attempts: int) -> timedelta:
    return min(timedelta(milliseconds=25) * (1 << min(attempts, 20)), MAX_BACKOFF)


class Reconciler:
    def __init__(
        self,
        *,
        engine: Engine,
        deployer: Deployer,
        workflow_apis: WorkflowApiClient,
        callbacks: CallbackClient,
        build_callback: CallbackBuilder,
        transfer_state: TransferState,
        metrics: Metrics,
        grace: timedelta,
        interval: timedelta,
        supervise_every: timedelta,
        callback_deadline: timedelta,
        callback_delay: timedelta,
        terminate_transfer: TerminateTransfer | None = None,
        slug_of: Callable[[str], str] = consumer_slug,
    ) -> None:
        self._engine = engine
        self._slug_of = slug_of
        self._deployer = deployer
        self._apis = workflow_apis
        self._callbacks = callbacks
        self._build_callback = build_callback
        self._transfer_state = transfer_state
        self._metrics = metrics
        self._grace = grace
        self._interval = interval
        self._supervise_every = supervise_every
        self._callback_deadline = callback_deadline
        self._callback_delay = callback_delay
        self._terminate_transfer = terminate_transfer
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        # consumer id -> (failures in a row, not before): per-consumer backoff of supervision
        self._consumer_backoff: dict[str, tuple[int, datetime]] = {}
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
        self._expire()
        with Session(self._engine) as session:
            due = list(
                session.exec(
                    select(Grant)
                    .where(
                        col(Grant.state).in_([GrantState.PROVISIONING, GrantState.REVOKING]),
                        col(Grant.next_attempt_at) <= utcnow(),
                    )
                    .order_by(col(Grant.next_attempt_at))
                )
            )
        for grant in due:
            if self._stopping.is_set():
                return
            state = grant.state
            try:
                if state is GrantState.PROVISIONING:
                    self._provision(grant)
                else:
                    self._revoke(grant)
            except Exception as error:  # one grant's failure must never stop the others
                log.exception("grant %s: unexpected error while %s", grant.id, state.value)
                self._step_crashed(grant, error)
        self._look_after_consumers()
        self._update_gauges()

    def _seconds_to_next_work(self) -> float:
        now = utcnow()
        candidates = [now + self._interval]
        with Session(self._engine) as session:
            pending = session.exec(
                select(func.min(Grant.next_attempt_at)).where(
                    col(Grant.state).in_([GrantState.PROVISIONING, GrantState.REVOKING])
                )
            ).one()
            expiring = session.exec(
                select(func.min(Grant.expires_at)).where(col(Grant.state).in_(LIVE))
            ).one()
            changing = session.exec(
                select(Consumer.id).where(
                    col(Consumer.state).in_([ConsumerState.DEPLOYING, ConsumerState.TEARING_DOWN])
                )
            ).all()
        candidates += [as_utc(moment) for moment in (pending, expiring) if moment is not None]
        for consumer_id in changing:  # polled while they change, unless backing off
            _, not_before = self._consumer_backoff.get(consumer_id, (0, now))
            candidates.append(max(not_before, now + DEPLOY_POLL))
        return max((min(candidates) - now).total_seconds(), 0.0)

    def _expire(self) -> None:
        now = utcnow()
        with Session(self._engine) as session:
            result = session.exec(
                update(Grant)
                .where(col(Grant.state).in_(LIVE), col(Grant.expires_at) <= now)
                .values(
                    state=GrantState.REVOKING,
                    revoke_reason="the contract expired",
                    next_attempt_at=now,
                    attempts=0,
                    callback_deadline=now + self._callback_deadline,
                    updated=now,
                )
            )
            session.commit()
        if result.rowcount:
            log.info("%d grant(s) expired", result.rowcount)

    # --- grants ----------------------------------------------------------------------------------

    def _ready_consumer(self, grant: Grant) -> Consumer | None:
        """The grant's consumer once its deployment is ready; None: the grant was rescheduled
        (or failed, when the consumer can have no deployment of its own)."""
        try:
            consumer = self._consumer_for(grant.consumer_id)
        except SlugTakenError as error:
            self._provision_failed(grant, error, retryable=False)
            return None
        if consumer.state is ConsumerState.READY:
            return consumer
        _, not_before = self._consumer_backoff.get(consumer.id, (0, utcnow()))
        if utcnow() < not_before:  # its deployment is backing off: so does the grant
            self._save(grant, GrantState.PROVISIONING, next_attempt_at=not_before)
            return None
        try:
            consumer = self._deploy(consumer)
        except DeploymentFailedError as error:
            self._provision_failed(grant, error)
            return None
        if consumer.state is not ConsumerState.READY:
            self._save(grant, GrantState.PROVISIONING, next_attempt_at=utcnow() + DEPLOY_POLL)
            return None
        return consumer

    def _provision(self, grant: Grant) -> None:
        consumer = self._ready_consumer(grant)
        if consumer is None:
            return
        endpoint = api_endpoint(consumer)
        assert endpoint is not None
        try:
            if not grant.granted_in_api:
                self._apis.grant(
                    endpoint,
                    spec_of(consumer).token_audience,
                    grant.asset_id,
                    agreement_id=grant.agreement_id,
                    expires_at=grant.expires_at,
                )
                if not self._save(grant, GrantState.PROVISIONING, granted_in_api=True):
                    return
                grant.granted_in_api = True
            callback = self._build_callback(grant, consumer, "provision")
            if callback is not None:
                not_before = as_utc(grant.created) + self._callback_delay
                if utcnow() < not_before:  # EDC may still hold the lease of its request
                    self._save(grant, GrantState.PROVISIONING, next_attempt_at=not_before)
                    return
                self._post_provision_callback(grant, callback)
        except (WorkflowApiError, CallbackError) as error:
            self._provision_failed(grant, error)
            return
        now = utcnow()
        if self._save(
            grant,
            GrantState.PROVISIONING,
            state=GrantState.ACTIVE,
            callback_done=True,
            provisioned_at=now,
            last_error="",
            attempts=0,
        ):
            seconds = (now - as_utc(grant.created)).total_seconds()
            self._metrics.provisioning_seconds.labels(grant.flavour.value).observe(seconds)
            log.info(
                "grant %s active for consumer %s after %.3f s", grant.id, grant.consumer_id, seconds
            )
        elif self._save(grant, GrantState.REVOKING, callback_done=True, provisioned_at=now):
            # A deprovision arrived while our callback was on its way: EDC has the provision
            # all the same, so the revocation that follows ends `revoked`, not `failed`.
            log.info("grant %s: provisioned, and already being revoked", grant.id)

    def _post_provision_callback(self, grant: Grant, callback: tuple[str, dict[str, Any]]) -> None:
        """A 409 may mean EDC took an earlier attempt whose answer we lost: ask EDC."""
        try:
            self._callbacks.post(*callback)
        except CallbackConflictError:
            state = self._transfer_state(grant.transfer_process_id)
            if state in PAST_PROVISIONING:
                log.info("grant %s: EDC already took the callback (transfer %s)", grant.id, state)
                return
            if state in ENDED:
                raise CallbackRejectedError(f"EDC ended the transfer ({state})") from None
            raise

    def _provision_failed(
        self, grant: Grant, error: Exception, *, retryable: bool | None = None
    ) -> None:
        """Retry with backoff until the callback deadline, unless the error is final."""
        if isinstance(error, CallbackError):
            self._metrics.callback_failures.labels("provision").inc()
        self._count_unauthorized(grant, error, "provision")
        attempts = grant.attempts + 1
        now = utcnow()
        deadline = as_utc(grant.callback_deadline) if grant.callback_deadline else None
        if retryable is None:
            retryable = not isinstance(error, CallbackError) or isinstance(
                error, CallbackRetryableError
            )
        if retryable and (deadline is None or now < deadline):
            log.warning("grant %s: %s (attempt %d, retrying)", grant.id, error, attempts)
            self._save(
                grant,
                GrantState.PROVISIONING,
                attempts=attempts,
                last_error=str(error),
                next_attempt_at=now + backoff(attempts),
            )
            return
        log.error(
            "grant %s (transfer %s): giving up: %s", grant.id, grant.transfer_process_id, error
        )
        if self._save(
            grant,
            GrantState.PROVISIONING,
            state=GrantState.REVOKING,
            attempts=0,
            last_error=str(error),
            revoke_reason=f"provisioning failed: {error}",
            next_attempt_at=now,
            callback_deadline=now + self._callback_deadline,
        ):
            self._end_transfer_in_edc(grant, f"the provisioner gave up: {error}")

    def _end_transfer_in_edc(self, grant: Grant, reason: str) -> None:
        """EDC has no timeout on a pending provisioning: without our callback its transfer
        would wait forever. Terminating it through the Management API ends it visibly."""
        if grant.flavour is Flavour.MANUAL or self._terminate_transfer is None:
            return
        try:
            self._terminate_transfer(grant.transfer_process_id, reason[:500])
        except ManagementError as error:
            log.error(
                "grant %s: could not terminate transfer %s in EDC either: %s",
                grant.id,
                grant.transfer_process_id,
                error,
            )
        else:
            log.warning(
                "grant %s: asked EDC to terminate transfer %s", grant.id, grant.transfer_process_id
            )

    def _count_unauthorized(self, grant: Grant, error: Exception, kind: str) -> None:
        if isinstance(error, CallbackUnauthorizedError):
            self._metrics.callback_unauthorized.labels(grant.flavour.value, kind).inc()
            log.error("grant %s: %s callback unauthorized: %s", grant.id, kind, error)

    def _step_crashed(self, grant: Grant, error: Exception) -> None:
        """An unexpected exception: recorded on the grant, which backs off on its own."""
        reason = f"{type(error).__name__}: {error}"
        try:
            if grant.state is GrantState.PROVISIONING:
                self._provision_failed(grant, RuntimeError(reason))
            elif grant.state is GrantState.REVOKING:
                attempts = grant.attempts + 1
                self._save(
                    grant,
                    GrantState.REVOKING,
                    attempts=attempts,
                    last_error=reason,
                    next_attempt_at=utcnow() + backoff(attempts),
                )
        except Exception:  # e.g. the database itself is gone: the pass goes on
            log.exception("grant %s: could not record the error", grant.id)

    def _revoke(self, grant: Grant) -> None:
        consumer = self._find_consumer(grant.consumer_id)
        try:
            ready = consumer is not None and consumer.state is ConsumerState.READY
            if grant.granted_in_api and ready and not self._asset_still_granted(grant):
                assert consumer is not None
                endpoint = api_endpoint(consumer)
                assert endpoint is not None
                self._apis.revoke(endpoint, spec_of(consumer).token_audience, grant.asset_id)
            if not self._save(grant, GrantState.REVOKING, granted_in_api=False):
                return
            if grant.deprovision_requested and not grant.deprovision_callback_done and consumer:
                self._post_deprovision_callback(grant, consumer)
        except (WorkflowApiError, CallbackError) as error:
            if isinstance(error, CallbackError):
                self._metrics.callback_failures.labels("deprovision").inc()
            self._count_unauthorized(grant, error, "deprovision")
            deadline = as_utc(grant.callback_deadline) if grant.callback_deadline else utcnow()
            if isinstance(error, CallbackRetryableError | WorkflowApiError) and utcnow() < deadline:
                attempts = grant.attempts + 1
                log.warning("grant %s: revoking: %s (attempt %d)", grant.id, error, attempts)
                self._save(
                    grant,
                    GrantState.REVOKING,
                    attempts=attempts,
                    last_error=str(error),
                    next_attempt_at=utcnow() + backoff(attempts),
                )
                return
            log.error("grant %s: revoking gave up on a step: %s", grant.id, error)
        final = GrantState.REVOKED if grant.provisioned_at is not None else GrantState.FAILED
        if self._save(grant, GrantState.REVOKING, state=final, deprovision_callback_done=True):
            log.info("grant %s %s: %s", grant.id, final.value, grant.revoke_reason)

    def _post_deprovision_callback(self, grant: Grant, consumer: Consumer) -> None:
        """Required by the data plane; for the legacy flow our 200 already deprovisioned the
        transfer and EDC may answer the redundant callback with an error: one attempt only."""
        callback = self._build_callback(grant, consumer, "deprovision")
        if callback is None:
            return
        try:
            self._callbacks.post(*callback)
        except CallbackError as error:
            if grant.flavour is not Flavour.LEGACY:
                raise
            self._count_unauthorized(grant, error, "deprovision")
            log.info(
                "grant %s: legacy deprovision callback not taken (%s); not needed", grant.id, error
            )

    def _asset_still_granted(self, grant: Grant) -> bool:
        """Another live grant of the same consumer for the same asset keeps it visible."""
        with Session(self._engine) as session:
            other = session.exec(
                select(Grant.id).where(
                    Grant.consumer_id == grant.consumer_id,
                    Grant.asset_id == grant.asset_id,
                    Grant.id != grant.id,
                    col(Grant.state).in_(LIVE),
                    col(Grant.granted_in_api).is_(True),
                )
            ).first()
        return other is not None

    def _save(self, grant: Grant, expected: GrantState, **changes: Any) -> bool:
        """Persist `changes` if the grant is still in `expected`; False if someone moved it."""
        changes["updated"] = utcnow()
        with Session(self._engine) as session:
            result = session.exec(
                update(Grant)
                .where(col(Grant.id) == grant.id, col(Grant.state) == expected)
                .values(**changes)
            )
            session.commit()
        if result.rowcount != 1:
            self.wake()
            return False
        for name, value in changes.items():
            setattr(grant, name, value)
        return True

    # --- consumers -------------------------------------------------------------------------------

    def _find_consumer(self, consumer_id: str) -> Consumer | None:
        with Session(self._engine) as session:
            return session.get(Consumer, consumer_id)

    def _consumer_for(self, consumer_id: str) -> Consumer:
        """The consumer's row, created (or revived from `removed`) as `deploying`."""
        now = utcnow()
        slug = self._slug_of(consumer_id)
        with Session(self._engine) as session:
            consumer = session.get(Consumer, consumer_id)
            if consumer is None:
                owner = session.exec(select(Consumer.id).where(Consumer.slug == slug)).first()
                if owner is not None:
                    raise SlugTakenError(
                        f"consumer {consumer_id!r} maps to the name {slug!r} of another consumer"
                    )
                consumer = Consumer(
                    id=consumer_id,
                    slug=slug,
                    state=ConsumerState.DEPLOYING,
                    created=now,
                    updated=now,
                )
            elif consumer.state in {ConsumerState.REMOVED, ConsumerState.TEARING_DOWN}:
                if consumer.state is ConsumerState.TEARING_DOWN:
                    self._tear_down(consumer)
                consumer.state, consumer.detail, consumer.endpoint = (
                    ConsumerState.DEPLOYING,
                    {},
                    None,
                )
            else:
                return consumer
            consumer.deploy_started, consumer.idle_since, consumer.updated = now, None, now
            session.add(consumer)
            try:
                session.commit()
            except IntegrityError as error:  # a concurrent insert took the slug (or the id)
                raise SlugTakenError(
                    f"consumer {consumer_id!r}: its name {slug!r} is already taken"
                ) from error
            session.refresh(consumer)
            log.info("consumer %s: deploying its workflow-api", consumer_id)
            return consumer

    def _deploy(self, consumer: Consumer) -> Consumer:
        spec = spec_of(consumer, self._live_assets(consumer.id))
        status = self._deployer.deploy(spec, dict(consumer.detail))
        state = ConsumerState.READY if status.state == "ready" else ConsumerState.DEPLOYING
        if state is not consumer.state:
            log.info("consumer %s is %s %s", consumer.id, state.value, status.endpoint or "")
        if status.state == "failed":
            log.warning("consumer %s: deployment failed: %s", consumer.id, status.message)
        updated = self._update_consumer(
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

    def _live_assets(self, consumer_id: str) -> tuple[str, ...]:
        with Session(self._engine) as session:
            assets = session.exec(
                select(Grant.asset_id)
                .where(Grant.consumer_id == consumer_id, col(Grant.state).in_(LIVE))
                .distinct()
            ).all()
        return tuple(sorted(assets))

    def _update_consumer(self, consumer: Consumer, **changes: Any) -> Consumer:
        with Session(self._engine) as session:
            stored = session.get(Consumer, consumer.id)
            assert stored is not None
            for name, value in {**changes, "updated": utcnow()}.items():
                setattr(stored, name, value)
            session.add(stored)
            session.commit()
            session.refresh(stored)
            return stored

    def _look_after_consumers(self) -> None:
        now = utcnow()
        with Session(self._engine) as session:
            consumers = list(
                session.exec(select(Consumer).where(Consumer.state != ConsumerState.REMOVED))
            )
            live = dict(
                session.exec(
                    select(Grant.consumer_id, func.count())
                    .where(col(Grant.state).in_([*LIVE, GrantState.REVOKING]))
                    .group_by(Grant.consumer_id)
                ).all()
            )
        for consumer in consumers:
            if self._stopping.is_set():
                return
            failures, not_before = self._consumer_backoff.get(consumer.id, (0, now))
            if now < not_before:
                continue
            try:
                self._look_after(consumer, live.get(consumer.id, 0), now)
            except Exception as error:  # one consumer's failure must never stop the others
                if not isinstance(error, DeploymentFailedError):
                    log.exception("consumer %s: unexpected error", consumer.id)
                failures += 1
                self._consumer_backoff[consumer.id] = (failures, now + backoff(failures))
                self._record_consumer_error(consumer, f"{type(error).__name__}: {error}")
            else:
                self._consumer_backoff.pop(consumer.id, None)

    def _look_after(self, consumer: Consumer, live_grants: int, now: datetime) -> None:
        if consumer.state is ConsumerState.TEARING_DOWN:
            self._tear_down(consumer)
        elif live_grants == 0:
            idle_since = as_utc(consumer.idle_since) if consumer.idle_since else now
            if consumer.idle_since is None:
                self._update_consumer(consumer, idle_since=now)
            if now - idle_since >= self._grace:
                self._tear_down(self._update_consumer(consumer, state=ConsumerState.TEARING_DOWN))
        elif consumer.state is ConsumerState.DEPLOYING or self._supervision_due(consumer, now):
            busy = consumer
            if busy.idle_since is not None:
                busy = self._update_consumer(busy, idle_since=None)
            self._deploy(busy)

    def _record_consumer_error(self, consumer: Consumer, message: str) -> None:
        try:
            self._update_consumer(consumer, message=message)
        except Exception:
            log.exception("consumer %s: could not record the error", consumer.id)

    def _supervision_due(self, consumer: Consumer, now: datetime) -> bool:
        checked = as_utc(consumer.checked) if consumer.checked else None
        return checked is None or now - checked >= self._supervise_every

    def _tear_down(self, consumer: Consumer) -> None:
        spec = spec_of(consumer)
        endpoint = api_endpoint(consumer)
        if endpoint and consumer.state is not ConsumerState.REMOVED:
            try:
                self._apis.purge(endpoint, spec.token_audience)
            except WorkflowApiError as error:
                log.warning(
                    "consumer %s: could not purge its data through its API: %s", consumer.id, error
                )
        self._deployer.remove(spec, dict(consumer.detail))
        self._update_consumer(
            consumer,
            state=ConsumerState.REMOVED,
            endpoint=None,
            detail={},
            idle_since=None,
            message="removed",
        )
        log.info("consumer %s: deployment and data removed", consumer.id)

    def _update_gauges(self) -> None:
        with Session(self._engine) as session:
            active = session.exec(
                select(func.count()).where(Consumer.state != ConsumerState.REMOVED)
            ).one()
            by_state = dict(
                session.exec(select(Grant.state, func.count()).group_by(Grant.state)).all()
            )
        self._metrics.active_consumers.set(active)
        for state in GrantState:
            self._metrics.grants.labels(state.value).set(by_state.get(state, 0))
