"""The grant steps: provision (deploy the consumer, grant the asset in its workflow-api, call
EDC back) and revoke (revoke it there, call EDC back), each persisted before the next.

What a step does with a failure depends only on the retry taxonomy (`workflow_common.retry`):
every adapter it calls translates its own failures into `TemporaryError` (try again after a
backoff, until the grant's callback deadline) or `PermanentError` (give up: a provisioning
grant is revoked, ending `failed`; a revocation skips the step). Anything else is a bug: the
loop records it on the grant, which backs off on its own (`record_crash`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from provisioner.edc.callbacks import (
    CallbackClient,
    CallbackConflictError,
    CallbackError,
    CallbackRejectedError,
    CallbackUnauthorizedError,
)
from provisioner.edc.management import ENDED, PAST_PROVISIONING
from provisioner.grants.models import (
    Consumer,
    ConsumerState,
    Flavour,
    Grant,
    GrantState,
)
from provisioner.metrics import Metrics
from provisioner.reconciler.consumers import ConsumerLifecycle, api_endpoint, spec_of
from provisioner.reconciler.store import ReconcilerStore
from provisioner.workflow_apis import WorkflowApiClient
from workflow_common.clock import utcnow
from workflow_common.retry import PermanentError, RetriedWorkError, TemporaryError

log = logging.getLogger(__name__)

DEPLOY_POLL = timedelta(milliseconds=50)

# (grant, consumer) -> (callback URL, body) for "provision" or "deprovision"; None: no callback
CallbackBuilder = Callable[[Grant, Consumer, str], tuple[str, dict[str, Any]] | None]
# transfer process id -> its state in EDC, or None when it cannot be asked
TransferState = Callable[[str], str | None]
# (transfer process id, reason): ask EDC to end a transfer we gave up on; raises on failure
TerminateTransfer = Callable[[str, str], None]


@dataclass(frozen=True)
class EdcSide:
    """What the grant steps need of EDC: the callback client and body builder, and the
    Management API's view of a transfer (reading its state, terminating it)."""

    callbacks: CallbackClient
    build_callback: CallbackBuilder
    transfer_state: TransferState
    terminate_transfer: TerminateTransfer | None = None


@dataclass(frozen=True)
class GrantTiming:
    callback_deadline: timedelta  # how long a grant's callbacks are retried
    callback_delay: timedelta  # EDC leases the transfer while it handles our answer


class GrantSteps:
    """See the module docstring; `backoff(attempts)` is the loop's backoff policy."""

    def __init__(
        self,
        *,
        store: ReconcilerStore,
        consumers: ConsumerLifecycle,
        workflow_apis: WorkflowApiClient,
        edc: EdcSide,
        metrics: Metrics,
        timing: GrantTiming,
        backoff: Callable[[int], timedelta],
    ) -> None:
        self._store = store
        self._consumers = consumers
        self._apis = workflow_apis
        self._edc = edc
        self._metrics = metrics
        self._timing = timing
        self._backoff = backoff

    # --- provisioning ----------------------------------------------------------------------------

    def _ready_consumer(self, grant: Grant) -> Consumer | None:
        """The grant's consumer once its deployment is ready; None: the grant was rescheduled
        (or failed, when the consumer can have no deployment of its own)."""
        try:
            consumer = self._consumers.demanded(grant.consumer_id)
        except PermanentError as error:
            self._provision_failed(grant, error)
            return None
        if consumer is not None and consumer.state is not ConsumerState.READY:
            deployed = self._deploy_for(grant, consumer)
            if deployed is None:
                return None
            consumer = deployed
        if consumer is None or consumer.state is not ConsumerState.READY:
            # not ready yet (or its earlier deployment is still being removed): poll
            self._save(grant, GrantState.PROVISIONING, next_attempt_at=utcnow() + DEPLOY_POLL)
            return None
        return consumer

    def _deploy_for(self, grant: Grant, consumer: Consumer) -> Consumer | None:
        """One deploy step for the grant's sake; None: the grant was rescheduled."""
        not_before = self._consumers.backing_off_until(consumer.id, utcnow())
        if utcnow() < not_before:  # its deployment is backing off: so does the grant
            self._save(grant, GrantState.PROVISIONING, next_attempt_at=not_before)
            return None
        try:
            return self._consumers.deploy(consumer)
        except TemporaryError as error:
            self._provision_failed(grant, error)
            return None

    def provision(self, grant: Grant) -> None:
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
            callback = self._edc.build_callback(grant, consumer, "provision")
            if callback is not None:
                not_before = grant.created + self._timing.callback_delay
                if utcnow() < not_before:  # EDC may still hold the lease of its request
                    self._save(grant, GrantState.PROVISIONING, next_attempt_at=not_before)
                    return
                self._post_provision_callback(grant, callback)
        except RetriedWorkError as error:
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
            seconds = (now - grant.created).total_seconds()
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
            self._edc.callbacks.post(*callback)
        except CallbackConflictError:
            state = self._edc.transfer_state(grant.transfer_process_id)
            if state in PAST_PROVISIONING:
                log.info("grant %s: EDC already took the callback (transfer %s)", grant.id, state)
                return
            if state in ENDED:
                raise CallbackRejectedError(f"EDC ended the transfer ({state})") from None
            raise

    def _provision_failed(self, grant: Grant, error: RetriedWorkError) -> None:
        """Retry with backoff until the callback deadline, unless the error is permanent."""
        self._count_callback_failure(grant, error, "provision")
        attempts = grant.attempts + 1
        now = utcnow()
        deadline = grant.callback_deadline if grant.callback_deadline else None
        if isinstance(error, TemporaryError) and (deadline is None or now < deadline):
            log.warning("grant %s: %s (attempt %d, retrying)", grant.id, error, attempts)
            self._save(
                grant,
                GrantState.PROVISIONING,
                attempts=attempts,
                last_error=str(error),
                next_attempt_at=now + self._backoff(attempts),
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
            callback_deadline=now + self._timing.callback_deadline,
        ):
            self._end_transfer_in_edc(grant, f"the provisioner gave up: {error}")

    def _end_transfer_in_edc(self, grant: Grant, reason: str) -> None:
        """EDC has no timeout on a pending provisioning: without our callback its transfer
        would wait forever. Terminating it through the Management API ends it visibly."""
        terminate = self._edc.terminate_transfer
        if grant.flavour is Flavour.MANUAL or terminate is None:
            return
        try:
            terminate(grant.transfer_process_id, reason[:500])
        except RetriedWorkError as error:
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

    def _count_callback_failure(self, grant: Grant, error: Exception, kind: str) -> None:
        """The callback metrics (which failure it was matters here, not for retrying)."""
        if isinstance(error, CallbackError):
            self._metrics.callback_failures.labels(kind).inc()
        self._count_unauthorized(grant, error, kind)

    def _count_unauthorized(self, grant: Grant, error: Exception, kind: str) -> None:
        if isinstance(error, CallbackUnauthorizedError):
            self._metrics.callback_unauthorized.labels(grant.flavour.value, kind).inc()
            log.error("grant %s: %s callback unauthorized: %s", grant.id, kind, error)

    def record_crash(self, grant: Grant, error: Exception) -> None:
        """An unexpected exception (a bug): recorded on the grant, which backs off on its own
        (a provisioning grant until its callback deadline, as for a temporary error)."""
        reason = f"{type(error).__name__}: {error}"
        try:
            if grant.state is GrantState.PROVISIONING:
                self._provision_failed(grant, TemporaryError(reason))
            elif grant.state is GrantState.REVOKING:
                attempts = grant.attempts + 1
                self._save(
                    grant,
                    GrantState.REVOKING,
                    attempts=attempts,
                    last_error=reason,
                    next_attempt_at=utcnow() + self._backoff(attempts),
                )
        except Exception:  # e.g. the database itself is gone: the pass goes on
            log.exception("grant %s: could not record the error", grant.id)

    # --- revoking --------------------------------------------------------------------------------

    def revoke(self, grant: Grant) -> None:
        consumer = self._store.find_consumer(grant.consumer_id)
        try:
            ready = consumer is not None and consumer.state is ConsumerState.READY
            if grant.granted_in_api and ready and not self._store.asset_still_granted(grant):
                assert consumer is not None
                endpoint = api_endpoint(consumer)
                assert endpoint is not None
                self._apis.revoke(endpoint, spec_of(consumer).token_audience, grant.asset_id)
            if not self._save(grant, GrantState.REVOKING, granted_in_api=False):
                return
            if grant.deprovision_requested and not grant.deprovision_callback_done and consumer:
                self._post_deprovision_callback(grant, consumer)
        except RetriedWorkError as error:
            self._count_callback_failure(grant, error, "deprovision")
            deadline = grant.callback_deadline if grant.callback_deadline else utcnow()
            if isinstance(error, TemporaryError) and utcnow() < deadline:
                attempts = grant.attempts + 1
                log.warning("grant %s: revoking: %s (attempt %d)", grant.id, error, attempts)
                self._save(
                    grant,
                    GrantState.REVOKING,
                    attempts=attempts,
                    last_error=str(error),
                    next_attempt_at=utcnow() + self._backoff(attempts),
                )
                return
            log.error("grant %s: revoking gave up on a step: %s", grant.id, error)
        final = GrantState.REVOKED if grant.provisioned_at is not None else GrantState.FAILED
        if self._save(grant, GrantState.REVOKING, state=final, deprovision_callback_done=True):
            log.info("grant %s %s: %s", grant.id, final.value, grant.revoke_reason)

    def _post_deprovision_callback(self, grant: Grant, consumer: Consumer) -> None:
        """Required by the data plane; for the legacy flow our 200 already deprovisioned the
        transfer and EDC may answer the redundant callback with an error: one attempt only."""
        callback = self._edc.build_callback(grant, consumer, "deprovision")
        if callback is None:
            return
        try:
            self._edc.callbacks.post(*callback)
        except CallbackError as error:
            if grant.flavour is not Flavour.LEGACY:
                raise
            self._count_unauthorized(grant, error, "deprovision")
            log.info(
                "grant %s: legacy deprovision callback not taken (%s); not needed", grant.id, error
            )

    def _save(self, grant: Grant, expected: GrantState, **changes: Any) -> bool:
        return self._store.save_grant(grant, expected, **changes)
