"""Teardown in steps: the Kubernetes deployer starts a namespace's deletion and checks on it on
later calls instead of waiting, and the reconciler provisions other consumers meanwhile.

The deployer runs with its real objects and configuration against an API whose namespace
deletion the test controls (a terminating namespace stays until the test lets it go)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from sqlmodel import Session, select

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.kubernetes import config
from provisioner.deployers.kubernetes import deployer as kubernetes_deployer
from provisioner.deployers.kubernetes.deployer import KubernetesDeployer, RemovalTimeoutError
from provisioner.deployers.kubernetes.objects import make_namespace
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.grants.models import (
    Consumer,
    ConsumerState,
    Flavour,
    Grant,
    GrantState,
    make_engine,
)
from provisioner.metrics import Metrics
from provisioner.reconciler.grant_steps import EdcSide
from provisioner.reconciler.loop import Reconciler, ReconcilerTiming
from provisioner.slugs import consumer_slug
from provisioner.tokens.issuing import workflow_api_audience
from workflow_common.clock import utcnow

KUBERNETES = KubernetesSettings(workflow_api_image="api:1", ingress_domain="workflows.example.org")


class TerminatingNamespaces:
    """The part of `KubernetesApi` that removal uses: namespaces that, once deleted, stay
    terminating until `finalise` (as the namespace controller does while it empties them)."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Any] = {}
        self.deletes: list[str] = []

    def add(self, spec: ConsumerSpec) -> str:
        namespace = make_namespace(config.deployment_spec(KUBERNETES, spec, {}))
        self.namespaces[namespace.metadata.name] = namespace
        return str(namespace.metadata.name)

    def finalise(self, name: str) -> None:
        del self.namespaces[name]

    def read(self, kind: str, name: str, namespace: str | None = None) -> Any | None:
        assert kind == "Namespace"
        return self.namespaces.get(name)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        assert kind == "Namespace"
        self.deletes.append(name)
        live = self.namespaces[name]
        live.metadata.deletion_timestamp = datetime.now(UTC)
        live.status = client.V1NamespaceStatus(phase="Terminating")

    def close(self) -> None:
        return None


class RecordingStorage:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
        return {}

    def remove(self, spec: ConsumerSpec) -> None:
        self.removed.append(spec.consumer_id)


def _spec(consumer_id: str) -> ConsumerSpec:
    slug = consumer_slug(consumer_id)
    return ConsumerSpec(consumer_id, slug, workflow_api_audience(slug))


@pytest.fixture(autouse=True)
def no_poll_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes_deployer, "REMOVAL_POLL_SECONDS", 0.0)


def _deployer(api: TerminatingNamespaces, storage: RecordingStorage, **changes: Any) -> Any:
    return KubernetesDeployer(
        api=api,  # type: ignore[arg-type]  # the removal's part of the API
        settings=KUBERNETES.model_copy(update=changes),
        workflow_api_env={},
        storage=storage,
    )


def test_a_removal_step_starts_the_deletion_and_returns_at_once() -> None:
    api, storage = TerminatingNamespaces(), RecordingStorage()
    deployer, spec = _deployer(api, storage), _spec("did:web:alice")
    namespace = api.add(spec)

    waiting = deployer.removal_step(spec, {})
    assert waiting == f"waiting for namespace {namespace} to be deleted"
    assert api.deletes == [namespace] and storage.removed == []

    assert deployer.removal_step(spec, {}) == waiting  # still terminating: checked, not waited
    assert api.deletes == [namespace], "a terminating namespace is not deleted again"

    api.finalise(namespace)
    assert deployer.removal_step(spec, {}) is None
    assert storage.removed == [spec.consumer_id], "storage goes once the namespace is gone"
    assert deployer.removal_step(spec, {}) is None  # again: nothing left to do


def test_a_namespace_that_does_not_go_in_time_is_a_temporary_error() -> None:
    api, storage = TerminatingNamespaces(), RecordingStorage()
    deployer, spec = _deployer(api, storage, removal_timeout_seconds=0.05), _spec("did:web:bob")
    api.add(spec)
    assert deployer.removal_step(spec, {}) is not None
    with pytest.raises(RemovalTimeoutError, match=r"still exists after 0\.05 s"):
        while deployer.removal_step(spec, {}) is not None:
            pass
    assert deployer.removal_step(spec, {}) is not None, "the next attempt waits afresh"
    assert storage.removed == []


def test_a_namespace_that_is_not_ours_is_left_alone() -> None:
    api, storage = TerminatingNamespaces(), RecordingStorage()
    deployer, spec = _deployer(api, storage), _spec("did:web:carol")
    namespace = api.add(_spec("did:web:carol"))
    api.namespaces[namespace].metadata.annotations = {}  # someone else's namespace of that name
    assert deployer.removal_step(spec, {}) is None
    assert api.deletes == [] and namespace in api.namespaces


# --- the reconciler goes on while a namespace terminates -----------------------------------------


class ReadyOnDemand:
    """The real deployer's removal steps; `deploy` answers ready at once (what the KWOK tier
    shows of a real rollout is not the point here)."""

    def __init__(self, removal: KubernetesDeployer) -> None:
        self._removal = removal
        self.deployed: list[str] = []

    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        self.deployed.append(spec.consumer_id)
        return DeploymentStatus("ready", f"http://127.0.0.1:9/{spec.slug}", {})

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        self._removal.remove(spec, detail)

    def removal_step(self, spec: ConsumerSpec, detail: dict[str, Any]) -> str | None:
        return self._removal.removal_step(spec, detail)

    def prepare(self) -> None:
        return None

    def close(self) -> None:
        return None


class WorkflowApis:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def grant(self, endpoint: str, audience: str, asset_id: str, **_: Any) -> None:
        self.calls.append(("grant", endpoint))

    def revoke(self, endpoint: str, audience: str, asset_id: str) -> None:
        self.calls.append(("revoke", endpoint))

    def purge(self, endpoint: str, audience: str) -> None:
        self.calls.append(("purge", endpoint))


def _manual_grant(consumer_id: str) -> Grant:
    now = utcnow()
    grant_id = str(uuid.uuid4())
    return Grant(
        id=grant_id,
        request_key=f"manual:{grant_id}",
        flavour=Flavour.MANUAL,
        transfer_process_id=grant_id,
        consumer_id=consumer_id,
        asset_id="echo",
        state=GrantState.PROVISIONING,
        next_attempt_at=now,
        callback_deadline=now + timedelta(minutes=10),
        created=now,
        updated=now,
    )


def test_a_consumer_is_provisioned_while_another_ones_namespace_is_still_terminating(
    tmp_path: Path,
) -> None:
    api, storage = TerminatingNamespaces(), RecordingStorage()
    leaving, arriving = _spec("did:web:leaving"), _spec("did:web:arriving")
    namespace = api.add(leaving)
    deployer = ReadyOnDemand(_deployer(api, storage))
    apis = WorkflowApis()
    engine = make_engine(f"sqlite:///{tmp_path / 'provisioner.db'}")
    now = utcnow()
    with Session(engine) as session:
        session.add(
            Consumer(
                id=leaving.consumer_id,
                slug=leaving.slug,
                state=ConsumerState.TEARING_DOWN,
                endpoint="http://127.0.0.1:9/leaving",
                created=now,
                updated=now,
            )
        )
        session.add(_manual_grant(arriving.consumer_id))
        session.commit()
    reconciler = Reconciler(
        engine=engine,
        deployer=deployer,
        workflow_apis=apis,  # type: ignore[arg-type]
        edc=EdcSide(
            callbacks=None,  # type: ignore[arg-type]  # hand grants have no callback
            build_callback=lambda grant, consumer, kind: None,
            transfer_state=lambda transfer: None,
        ),
        metrics=Metrics(),
        timing=ReconcilerTiming(
            interval=timedelta(seconds=1),
            supervise_every=timedelta(seconds=5),
            grace=timedelta(0),
            callback_deadline=timedelta(minutes=10),
            callback_delay=timedelta(0),
        ),
    )

    def state_of(model: type[Any], key: str) -> Any:
        with Session(engine) as session:
            row = session.get(model, key)
            assert row is not None
            return row.state

    reconciler.run_once()  # the arriving consumer deploys; the leaving one starts its deletion
    reconciler.run_once()  # the arriving one's grant goes through; the namespace still there
    with Session(engine) as session:
        (grant,) = session.exec(select(Grant)).all()
    assert state_of(Grant, grant.id) is GrantState.ACTIVE
    assert state_of(Consumer, arriving.consumer_id) is ConsumerState.READY
    assert state_of(Consumer, leaving.consumer_id) is ConsumerState.TEARING_DOWN
    assert api.deletes == [namespace] and namespace in api.namespaces
    assert apis.calls.count(("purge", "http://127.0.0.1:9/leaving")) == 1, "purged once only"

    api.finalise(namespace)
    reconciler.run_once()
    assert state_of(Consumer, leaving.consumer_id) is ConsumerState.REMOVED
    assert storage.removed == [leaving.consumer_id]
    engine.dispose()
