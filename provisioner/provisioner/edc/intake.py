"""Turning a provision or deprovision request into a persisted grant, after checking it with EDC.

Nothing is deployed here: a request is verified through the Management API (transfer process →
agreement: consumer, asset, signing date, expiry), recorded under a unique key and answered; the
reconciler does the rest. Duplicates (also concurrent ones) find the existing row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from provisioner.edc.expiry import PolicyError, agreement_end
from provisioner.edc.management import (
    ENDED,
    EdcUnavailableError,
    ManagementClient,
    NotFoundInEdcError,
)
from provisioner.errors import ConflictError, RefusedError, RetryLaterError
from provisioner.grants.models import Consumer, Flavour, Grant, GrantState
from provisioner.metrics import Metrics
from provisioner.slugs import consumer_slug
from workflow_common.clock import as_utc, utcnow
from workflow_contracts.asset import WorkflowAsset

log = logging.getLogger(__name__)

# EDC asks for a deprovision only once the provider transfer process is ending (reference §1.10,
# §2.10, §3.3): legacy from DEPROVISIONING; the data plane after the control plane's TERMINATING
# or a completion. Anything earlier is a live transfer, and its grant stays.
TRANSFER_ENDING = frozenset({"COMPLETING", "COMPLETING_REQUESTED", "COMPLETED"} | ENDED)


@dataclass(frozen=True)
class Verified:
    consumer_id: str
    asset_id: str
    agreement_id: str
    signed_at: datetime | None
    expires_at: datetime | None


def request_key(flavour: Flavour, transfer_process_id: str, resource_id: str | None = None) -> str:
    return ":".join([flavour.value, transfer_process_id, *([resource_id] if resource_id else [])])


class Intake:
    def __init__(
        self,
        *,
        engine: Engine,
        management: ManagementClient | None,
        catalog: dict[str, WorkflowAsset],
        metrics: Metrics,
        callback_deadline: timedelta,
        wake: Callable[[], None],
        slug_of: Callable[[str], str] = consumer_slug,
    ) -> None:
        self._engine = engine
        self._slug_of = slug_of
        self._management = management
        self._catalog = catalog
        self._metrics = metrics
        self._deadline = callback_deadline
        self._wake = wake

    def provision(
        self,
        flavour: Flavour,
        *,
        transfer_process_id: str,
        callback_address: str,
        asset_id: str | None,
        resource_definition_id: str | None = None,
        provision_resource_id: str | None = None,
    ) -> Grant:
        key = request_key(flavour, transfer_process_id, provision_resource_id)
        existing = self._find(key)
        if existing is not None:
            log.info("duplicate provision request for transfer %s", transfer_process_id)
            return existing
        verified = self.verify(transfer_process_id, asset_id)
        self._check_name_is_free(verified.consumer_id)
        now = utcnow()
        grant = Grant(
            id=str(uuid.uuid4()),
            request_key=key,
            flavour=flavour,
            transfer_process_id=transfer_process_id,
            provision_resource_id=provision_resource_id,
            resource_definition_id=resource_definition_id,
            callback_address=callback_address,
            consumer_id=verified.consumer_id,
            asset_id=verified.asset_id,
            agreement_id=verified.agreement_id,
            signed_at=verified.signed_at,
            expires_at=verified.expires_at,
            state=GrantState.PROVISIONING,
            next_attempt_at=now,
            callback_deadline=now + self._deadline,
            created=now,
            updated=now,
        )
        return self._insert(grant)

    def grant_by_hand(self, consumer_id: str, asset_id: str, expires_at: datetime | None) -> Grant:
        if asset_id not in self._catalog:
            raise RefusedError(f"asset {asset_id!r} is not in the catalog")
        if expires_at is not None and as_utc(expires_at) <= utcnow():
            raise RefusedError("expires_at is in the past")
        self._check_name_is_free(consumer_id)
        now = utcnow()
        grant_id = str(uuid.uuid4())
        grant = Grant(
            id=grant_id,
            request_key=request_key(Flavour.MANUAL, grant_id),
            flavour=Flavour.MANUAL,
            transfer_process_id=grant_id,
            consumer_id=consumer_id,
            asset_id=asset_id,
            expires_at=expires_at,
            state=GrantState.PROVISIONING,
            next_attempt_at=now,
            created=now,
            updated=now,
        )
        return self._insert(grant)

    def deprovision(
        self, flavour: Flavour, transfer_process_id: str, provision_resource_id: str | None = None
    ) -> Grant | None:
        """Revoke at once (the reconciler carries it out) once EDC confirms the transfer is
        ending; requests for transfers we hold no grant for are fine (nothing to do)."""
        key = request_key(flavour, transfer_process_id, provision_resource_id)
        if self._find(key) is None:
            log.info("deprovision for unknown transfer %s: nothing to do", transfer_process_id)
            return None
        self._verify_ending(transfer_process_id)
        with Session(self._engine) as session:
            grant = session.exec(select(Grant).where(Grant.request_key == key)).first()
            if grant is None:
                return None
            grant.deprovision_requested = True
            if grant.state.live:
                grant.state = GrantState.REVOKING
                grant.revoke_reason = "deprovisioned by EDC"
            elif flavour is Flavour.DATAPLANE and grant.state is not GrantState.REVOKING:
                # Our expiry timer (or an earlier deprovision) ended the grant already, but EDC
                # waits for a callback to every deprovision it sends: revoke again to send it.
                grant.state = GrantState.REVOKING
                grant.deprovision_callback_done = False
                grant.attempts = 0
                grant.callback_deadline = utcnow() + self._deadline
            grant.next_attempt_at = utcnow()
            grant.updated = utcnow()
            session.add(grant)
            session.commit()
            session.refresh(grant)
        log.info("transfer %s: deprovision requested (grant %s)", transfer_process_id, grant.id)
        self._wake()
        return grant

    def verify(self, transfer_process_id: str, asset_hint: str | None) -> Verified:
        """Never trust the request: EDC's own records say who gets what until when."""
        if self._management is None:
            raise RetryLaterError("the EDC Management API is not configured")
        try:
            transfer = self._management.transfer_process(transfer_process_id)
            agreement = self._management.agreement(transfer.contract_id)
        except NotFoundInEdcError as error:
            self._refuse(transfer_process_id, f"unknown to EDC: {error}")
        except EdcUnavailableError as error:
            log.warning("transfer %s: cannot verify now: %s", transfer_process_id, error)
            raise RetryLaterError(str(error)) from error
        if asset_hint is not None and asset_hint != transfer.asset_id:
            self._refuse(
                transfer_process_id,
                f"request names asset {asset_hint!r}, EDC's transfer is for {transfer.asset_id!r}",
            )
        if agreement.asset_id != transfer.asset_id:
            self._refuse(transfer_process_id, "agreement and transfer name different assets")
        if transfer.asset_id not in self._catalog:
            self._refuse(transfer_process_id, f"asset {transfer.asset_id!r} is not in the catalog")
        try:
            expires_at = agreement_end(agreement.policy, agreement.signed_at)
        except PolicyError as error:
            self._refuse(transfer_process_id, f"agreement {agreement.id}: {error}")
        if expires_at is not None and expires_at <= utcnow():
            self._refuse(transfer_process_id, f"agreement {agreement.id} expired at {expires_at}")
        return Verified(
            consumer_id=agreement.consumer_id,
            asset_id=transfer.asset_id,
            agreement_id=agreement.id,
            signed_at=agreement.signed_at,
            expires_at=expires_at,
        )

    def _verify_ending(self, transfer_process_id: str) -> None:
        """A deprovision is believed only when EDC's own record of the transfer says it ends:
        409 for a live one (a forged request; EDC's data plane would retry a genuine one that
        raced ahead of its control plane), 400 for one EDC does not know, 503 if EDC cannot be
        asked (EDC retries)."""
        if self._management is None:
            raise RetryLaterError("the EDC Management API is not configured")
        try:
            state = self._management.transfer_process(transfer_process_id).state
        except NotFoundInEdcError as error:
            self._metrics.refused.inc()
            log.warning("deprovision refused for transfer %s: unknown to EDC", transfer_process_id)
            raise RefusedError(f"transfer {transfer_process_id}: unknown to EDC: {error}") from None
        except EdcUnavailableError as error:
            log.warning(
                "transfer %s: cannot verify the deprovision: %s", transfer_process_id, error
            )
            raise RetryLaterError(str(error)) from error
        if state not in TRANSFER_ENDING:
            self._metrics.refused.inc()
            log.warning(
                "deprovision refused for transfer %s: EDC reports it %s", transfer_process_id, state
            )
            raise ConflictError(
                f"transfer {transfer_process_id} is {state or 'in an unknown state'} in EDC;"
                " a deprovision is accepted once EDC ends the transfer"
            )

    def _check_name_is_free(self, consumer_id: str) -> None:
        """A consumer whose slug another consumer holds could never be deployed: refuse it now
        (the reconciler refuses it too, for requests that raced past this check)."""
        slug = self._slug_of(consumer_id)
        with Session(self._engine) as session:
            owner = session.exec(
                select(Consumer.id).where(Consumer.slug == slug, Consumer.id != consumer_id)
            ).first()
        if owner is not None:
            log.warning("consumer %s: its name %s is taken by another consumer", consumer_id, slug)
            self._metrics.refused.inc()
            raise RefusedError(
                f"consumer {consumer_id!r} maps to the deployment name {slug!r}, which another"
                " consumer holds"
            )

    def _refuse(self, transfer_process_id: str, reason: str) -> NoReturn:
        log.warning("refused provisioning for transfer %s: %s", transfer_process_id, reason)
        self._metrics.refused.inc()
        raise RefusedError(f"transfer {transfer_process_id}: {reason}")

    def _find(self, key: str) -> Grant | None:
        with Session(self._engine) as session:
            return session.exec(select(Grant).where(Grant.request_key == key)).first()

    def _insert(self, grant: Grant) -> Grant:
        try:
            with Session(self._engine) as session:
                session.add(grant)
                session.commit()
                session.refresh(grant)
        except IntegrityError:
            existing = self._find(grant.request_key)
            if existing is None:
                raise
            return existing
        log.info(
            "grant %s: %s for consumer %s, asset %s, transfer %s, until %s",
            grant.id,
            grant.flavour.value,
            grant.consumer_id,
            grant.asset_id,
            grant.transfer_process_id,
            grant.expires_at or "no end",
        )
        self._wake()
        return grant
