"""`/admin` (admin token): consumers, grants, hand grants, revocation, teardown, the offering."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlmodel import Session, col, select

from provisioner.deps import AdminDep, ServicesDep
from provisioner.errors import NotFoundError
from provisioner.grants.models import Consumer, Grant, GrantState
from workflow_common.clock import utcnow
from workflow_contracts.text import CleanText

router = APIRouter(prefix="/admin", tags=["admin"])
LIVE = [GrantState.PROVISIONING, GrantState.ACTIVE]


class HandGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consumer_id: CleanText = Field(min_length=1, max_length=255)
    asset_id: CleanText = Field(min_length=1)
    expires_at: datetime | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def grant_document(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "flavour": grant.flavour.value,
        "transferProcessId": grant.transfer_process_id,
        "consumerId": grant.consumer_id,
        "assetId": grant.asset_id,
        "agreementId": grant.agreement_id,
        "state": grant.state.value,
        "expiresAt": _iso(grant.expires_at),
        "provisionedAt": _iso(grant.provisioned_at),
        "revokeReason": grant.revoke_reason or None,
        "lastError": grant.last_error or None,
    }


def consumer_document(consumer: Consumer) -> dict[str, Any]:
    return {
        "id": consumer.id,
        "slug": consumer.slug,
        "state": consumer.state.value,
        "endpoint": consumer.endpoint,
        "message": consumer.message or None,
        "idleSince": _iso(consumer.idle_since),
    }


@router.get("/consumers")
def list_consumers(services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    with Session(services.engine) as session:
        consumers = session.exec(select(Consumer).order_by(col(Consumer.id))).all()
    return {"consumers": [consumer_document(c) for c in consumers]}


@router.get("/grants")
def list_grants(
    services: ServicesDep, _: AdminDep, state: GrantState | None = None
) -> dict[str, Any]:
    query = select(Grant).order_by(col(Grant.created))
    if state is not None:
        query = query.where(Grant.state == state)
    with Session(services.engine) as session:
        grants = session.exec(query).all()
    return {"grants": [grant_document(g) for g in grants]}


@router.post("/grants", status_code=201)
def grant_by_hand(body: HandGrantRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Without EDC: the answer's `secret` fetches the consumer's credentials from /credentials."""
    grant = services.intake.grant_by_hand(body.consumer_id, body.asset_id, body.expires_at)
    return {
        **grant_document(grant),
        "secret": services.handover.secret_of(grant),
        "credentialsUrl": f"{services.settings.base_url}/credentials",
    }


@router.delete("/grants/{grant_id}")
def revoke_grant(grant_id: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    revoked = _revoke(services, col(Grant.id) == grant_id)
    with Session(services.engine) as session:
        grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFoundError(f"no grant {grant_id!r}")
    return {**grant_document(grant), "revoked": revoked == 1}


@router.delete("/consumers/{consumer_id}")
def tear_down_consumer(consumer_id: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Revoke every live grant; the deployment goes after the grace period."""
    with Session(services.engine) as session:
        if session.get(Consumer, consumer_id) is None:
            raise NotFoundError(f"no consumer {consumer_id!r}")
    revoked = _revoke(services, col(Grant.consumer_id) == consumer_id)
    return {"consumerId": consumer_id, "revokedGrants": revoked}


def _revoke(services: Any, condition: Any) -> int:
    now = utcnow()
    deadline = now.timestamp() + services.settings.callback_deadline_seconds
    with Session(services.engine) as session:
        result = session.exec(
            update(Grant)
            .where(condition, col(Grant.state).in_(LIVE))
            .values(
                state=GrantState.REVOKING,
                revoke_reason="revoked by an administrator",
                next_attempt_at=now,
                attempts=0,
                callback_deadline=datetime.fromtimestamp(deadline, now.tzinfo),
                updated=now,
            )
        )
        session.commit()
    services.reconciler.wake()
    count: int = result.rowcount
    return count


@router.get("/offering")
def offering(services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """The start-up publishing into EDC (`PROVISIONER_EDC_PUBLISH_ON_STARTUP`): done, pending or
    failed, and what it changed."""
    publisher = services.publisher
    if publisher is None:
        return {"publishOnStartup": False}
    report = publisher.report
    return {
        "publishOnStartup": True,
        "published": report is not None,
        "error": publisher.error,
        "changes": report.lines() if report is not None else [],
    }
