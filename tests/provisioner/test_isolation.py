"""One consumer's trouble never blocks another's: a deployment that always fails, an unexpected
exception, and two consumer ids whose names collide (forced through `Parts.slug_of`)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from provisioner.deployers.base import ConsumerSpec, Deployer, DeploymentStatus
from provisioner.edc.intake import request_key
from provisioner.grants.models import Flavour, Grant, GrantState
from provisioner.services import Parts
from provisioner.slugs import consumer_slug
from workflow_common.clock import utcnow
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import RunningProvisioner


class Sabotaged:
    """The real deployer, except for chosen consumers: `deploy` raises or answers `failed`."""

    def __init__(self, real: Deployer, *, raises: set[str], fails: set[str]) -> None:
        self._real, self._raises, self._fails = real, raises, fails
        self.attempts: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        if spec.consumer_id in self._raises | self._fails:
            with self._lock:
                self.attempts.setdefault(spec.consumer_id, []).append(utcnow().timestamp())
            if spec.consumer_id in self._raises:
                raise RuntimeError("the deployer's backend exploded")
            return DeploymentStatus("failed", None, {}, "image pull failed")
        return self._real.deploy(spec, detail)

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        self._real.remove(spec, detail)

    def prepare(self) -> None:
        self._real.prepare()

    def close(self) -> None:
        self._real.close()


def _grant(provisioner: RunningProvisioner, consumer: str, **extra: Any) -> dict[str, Any]:
    response = provisioner.admin.post(
        "/admin/grants", json={"consumer_id": consumer, "asset_id": "echo", **extra}
    )
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def _state(provisioner: RunningProvisioner, grant_id: str) -> dict[str, Any]:
    return next(g for g in provisioner.admin_api.grants() if g["id"] == grant_id)


def test_a_failing_consumer_blocks_neither_provisioning_nor_revocation_nor_expiry(
    provisioner_factory: Callable[..., RunningProvisioner],
) -> None:
    deployers: list[Sabotaged] = []

    def sabotage(real: Deployer) -> Deployer:
        deployers.append(Sabotaged(real, raises={"mallory"}, fails={"oscar"}))
        return deployers[0]

    provisioner = provisioner_factory(parts=Parts(wrap_deployer=sabotage))
    carol = _grant(provisioner, "carol")
    poll(lambda: _state(provisioner, carol["id"])["state"] == "active", 60, "carol active")

    # The broken ones come first: today's reconciler handles due grants oldest first.
    mallory, oscar = _grant(provisioner, "mallory"), _grant(provisioner, "oscar")
    poll(lambda: "mallory" in deployers[0].attempts, 10, "mallory's first attempt")
    expires = datetime.now(UTC) + timedelta(seconds=4)
    dave = _grant(provisioner, "dave", expires_at=expires.isoformat())
    bob = _grant(provisioner, "bob")
    assert provisioner.admin.delete(f"/admin/grants/{carol['id']}").json()["revoked"] is True

    poll(lambda: _state(provisioner, bob["id"])["state"] == "active", 60, "bob active")
    poll(lambda: _state(provisioner, carol["id"])["state"] == "revoked", 60, "carol revoked")
    poll(
        lambda: (provisioner.admin_api.consumer("carol") or {}).get("state") == "removed",
        60,
        "carol gone",
    )
    poll(lambda: _state(provisioner, dave["id"])["state"] == "revoked", 60, "dave expired")
    assert _state(provisioner, dave["id"])["revokeReason"] == "the contract expired"

    for broken, message in ((mallory, "exploded"), (oscar, "image pull failed")):
        state = _state(provisioner, broken["id"])
        assert state["state"] == "provisioning"
        assert message in (state["lastError"] or ""), state
    consumer = provisioner.admin_api.consumer("mallory") or {}
    assert "exploded" in (consumer.get("message") or ""), consumer

    # Each broken grant backs off on its own: the gaps between attempts grow.
    attempts = deployers[0].attempts["mallory"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) < 60, f"{len(attempts)} attempts: no backoff"
    assert max(gaps[-3:]) >= 0.3, gaps


def test_a_consumer_id_whose_name_is_taken_is_refused_cleanly(
    provisioner_factory: Callable[..., RunningProvisioner],
) -> None:
    twins = {"alice", "alicia"}

    def colliding(consumer_id: str) -> str:
        return "twin-00000000" if consumer_id in twins else consumer_slug(consumer_id)

    provisioner = provisioner_factory(parts=Parts(slug_of=colliding))
    alice = _grant(provisioner, "alice")
    poll(lambda: _state(provisioner, alice["id"])["state"] == "active", 60, "alice active")

    refused = provisioner.admin.post(
        "/admin/grants", json={"consumer_id": "alicia", "asset_id": "echo"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "another consumer" in refused.json()["detail"]

    # A request that raced past the intake's check (no consumer row yet) meets the reconciler's.
    raced = _insert_grant(provisioner, "alicia")
    bob = _grant(provisioner, "bob")
    poll(lambda: _state(provisioner, raced)["state"] == "failed", 60, "alicia's grant failed")
    assert "another consumer" in (_state(provisioner, raced)["revokeReason"] or "")
    poll(lambda: _state(provisioner, bob["id"])["state"] == "active", 60, "bob active")
    assert _state(provisioner, alice["id"])["state"] == "active"
    assert provisioner.admin_api.consumer("alicia") is None


def _insert_grant(provisioner: RunningProvisioner, consumer_id: str) -> str:
    grant_id = str(uuid.uuid4())
    now = utcnow()
    grant = Grant(
        id=grant_id,
        request_key=request_key(Flavour.MANUAL, grant_id),
        flavour=Flavour.MANUAL,
        transfer_process_id=grant_id,
        consumer_id=consumer_id,
        asset_id="echo",
        state=GrantState.PROVISIONING,
        next_attempt_at=now,
        created=now,
        updated=now,
    )
    with Session(provisioner.services.engine) as session:
        session.add(grant)
        session.commit()
    provisioner.services.reconciler.wake()
    return grant_id
