"""The Kubernetes deployer: each consumer's workflow-api in a namespace of its own.

`deploy` is called by the reconciler over and over, so every call is short:

- a full pass (the first call, changed inputs such as grants or settings, and every
  `resync_seconds`): the consumer's storage (`ConsumerStorage.ensure`, whose settings go into its
  Secret), then every object of `make_consumer_objects`, created or updated where missing or
  different (`KubernetesApi.ensure`), so objects deleted behind our back come back;
- then, at most every `STATUS_POLL_SECONDS`, one read of the Deployment: rollout complete →
  `ready` with the public URL; else `starting`, and after `readiness_timeout_seconds` `failed`
  with the cause read from the pods. A consumer that was never ready is then removed again
  (namespace and storage): a failed first deploy leaves nothing behind. One that was ready
  keeps its objects and data, and a Deployment that stops being available is `starting` again.

`removal_step` (what the reconciler calls, once per pass) deletes the namespace (the namespace
controller deletes what is in it) and answers at once; later steps check, at most every
`REMOVAL_POLL_SECONDS`, whether it is really gone, and then remove the consumer's storage. A
removal taking more than `removal_timeout_seconds` raises a temporary error (the reconciler backs
off and starts the wait afresh). `remove` does the same steps waiting in between (for callers that
want it gone on return). A namespace of that name that is not this consumer's (other labels or
consumer id) is never written to nor deleted.

`detail`, persisted by the reconciler between calls:

    inputs          hash of what the last full pass applied; synced_at: when (epoch seconds)
    checked_at      last read of the Deployment
    waiting_since   since when it is starting or unavailable; None while ready
    was_ready       it has been ready once
    admin_endpoint  its Service, where the provisioner calls its admin API (see base.py)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.kubernetes import config
from provisioner.deployers.kubernetes.api import KubernetesApi
from provisioner.deployers.kubernetes.objects import make_consumer_objects
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.spec import API_NAME, CONSUMER_ID_ANNOTATION, internal_url
from provisioner.deployers.kubernetes.status import describe_failure, rollout_complete
from provisioner.storage.consumer import ConsumerStorage, NoConsumerStorage
from workflow_common.kubernetes import KubernetesApiError
from workflow_common.retry import PermanentError, RetriedWorkError, TemporaryError

log = logging.getLogger(__name__)

STATUS_POLL_SECONDS = 0.5  # the reconciler asks every 50 ms while a consumer is deploying
REMOVAL_POLL_SECONDS = 0.5
MANAGED_BY = ("app.kubernetes.io/managed-by", "workflow-provisioner")


class KubernetesDeploymentError(PermanentError):
    """A namespace of the consumer's name that is not ours."""


class RemovalTimeoutError(TemporaryError):
    """The consumer's namespace did not go away in time; the removal is retried."""


@dataclass(frozen=True)
class _Record:
    """What `detail` holds, validated (anything malformed counts as unknown)."""

    inputs: str | None = None
    synced_at: float | None = None
    checked_at: float | None = None
    waiting_since: float | None = None
    was_ready: bool = False
    admin_endpoint: str | None = None

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> _Record:
        def number(key: str) -> float | None:
            value = detail.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        inputs, endpoint = detail.get("inputs"), detail.get("admin_endpoint")
        return cls(
            inputs=inputs if isinstance(inputs, str) else None,
            synced_at=number("synced_at"),
            checked_at=number("checked_at"),
            waiting_since=number("waiting_since"),
            was_ready=detail.get("was_ready") is True,
            admin_endpoint=endpoint if isinstance(endpoint, str) else None,
        )

    def to_detail(self) -> dict[str, Any]:
        return asdict(self)


def _ours(namespace: Any, spec: ConsumerSpec) -> bool:
    labels = namespace.metadata.labels or {}
    annotations = namespace.metadata.annotations or {}
    return (
        labels.get(MANAGED_BY[0]) == MANAGED_BY[1]
        and annotations.get(CONSUMER_ID_ANNOTATION) == spec.consumer_id
    )


class KubernetesDeployer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        api: KubernetesApi,
        settings: KubernetesSettings,
        workflow_api_env: Mapping[str, str],
        storage: ConsumerStorage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._kubernetes = settings
        self._env = dict(workflow_api_env)
        self._storage = storage or NoConsumerStorage()
        self._clock = clock
        # namespace -> (monotonic start of its removal, last check): removals under way
        self._removals: dict[str, tuple[float, float]] = {}
        shared = [repr(settings), sorted(self._env.items()), type(self._storage).__name__]
        self._shared_inputs = json.dumps(shared, default=str)
        config.deployment_spec(settings, ConsumerSpec("check", "check", "check"), self._env)

    def prepare(self) -> None:
        return None

    def close(self) -> None:
        self._api.close()

    # --- the Deployer protocol -----------------------------------------------------------------

    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        record = _Record.from_detail(detail)
        namespace = config.namespace(self._kubernetes, spec)
        now = self._clock()
        inputs = self._inputs(spec)
        asked_recently = now - (record.checked_at or 0.0) < STATUS_POLL_SECONDS
        if record.waiting_since is not None and asked_recently:  # it asks every 50 ms
            return self._starting(record, "waiting for the workflow-api to become available")
        resync_due = now - (record.synced_at or 0.0) >= self._kubernetes.resync_seconds
        full_pass = record.synced_at is None or record.inputs != inputs or resync_due
        record = replace(record, checked_at=now)
        try:
            if full_pass:
                waiting = self._sync(spec, namespace)
                if waiting:
                    return self._not_available(spec, record, None, now, waiting)
                record = replace(record, inputs=inputs, synced_at=now)
            deployment = self._api.read("Deployment", API_NAME, namespace)
        except RetriedWorkError as error:  # the client's errors and storage's are taxonomy members
            return self._trouble(spec, record, now, error)
        if deployment is not None and rollout_complete(deployment):
            if record.waiting_since is not None or not record.was_ready:
                log.info("consumer %s: workflow-api ready in %s", spec.consumer_id, namespace)
            endpoint = (
                internal_url(namespace)
                if self._kubernetes.reach_workflow_api == "service"
                else None
            )
            ready = replace(record, waiting_since=None, was_ready=True, admin_endpoint=endpoint)
            return DeploymentStatus(
                "ready", config.public_url(self._kubernetes, spec), ready.to_detail()
            )
        if deployment is None:
            record = replace(record, synced_at=None)  # deleted behind our back: a full pass next
        return self._not_available(spec, record, deployment, now)

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        """The removal steps, waiting in between until all is gone (bounded)."""
        while self.removal_step(spec, detail) is not None:
            time.sleep(REMOVAL_POLL_SECONDS)

    def removal_step(self, spec: ConsumerSpec, detail: dict[str, Any]) -> str | None:
        """See the module docstring."""
        namespace = config.namespace(self._kubernetes, spec)
        now = time.monotonic()
        started, checked = self._removals.get(namespace, (now, 0.0))
        waiting = f"waiting for namespace {namespace} to be deleted"
        if now - checked < REMOVAL_POLL_SECONDS:
            return waiting
        live = self._api.read("Namespace", namespace)
        if live is not None and not _ours(live, spec):
            log.warning(
                "consumer %s: namespace %s is not ours; left alone", spec.consumer_id, namespace
            )
        elif live is not None:
            if live.metadata.deletion_timestamp is None:
                self._api.delete("Namespace", namespace)
                log.info("consumer %s: deleting namespace %s", spec.consumer_id, namespace)
            if now - started >= self._kubernetes.removal_timeout_seconds:
                del self._removals[namespace]
                raise RemovalTimeoutError(self._still_there(namespace, live))
            self._removals[namespace] = (started, now)
            return waiting
        self._removals.pop(namespace, None)
        self._storage.remove(spec)
        log.info("consumer %s: namespace %s and storage removed", spec.consumer_id, namespace)
        return None

    # --- steps ---------------------------------------------------------------------------------

    def _inputs(self, spec: ConsumerSpec) -> str:
        mine = [spec.consumer_id, spec.slug, spec.token_audience, sorted(set(spec.grants))]
        text = json.dumps([mine, self._shared_inputs])
        return hashlib.sha256(text.encode()).hexdigest()

    def _sync(self, spec: ConsumerSpec, namespace: str) -> str | None:
        """Storage, then every object; a message when it has to wait for an old namespace."""
        live = self._api.read("Namespace", namespace)
        if live is not None and not _ours(live, spec):
            raise KubernetesDeploymentError(
                f"namespace {namespace} exists and is not this consumer's (it lacks the labels"
                f" or the {CONSUMER_ID_ANNOTATION} annotation {spec.consumer_id!r})"
            )
        if live is not None and live.metadata.deletion_timestamp is not None:
            return f"waiting for the earlier namespace {namespace} to be deleted"
        env = {**self._env, **self._storage.ensure(spec)}
        changed = []
        objects: list[Any] = make_consumer_objects(
            config.deployment_spec(self._kubernetes, spec, env)
        )
        for desired in objects:
            if self._api.ensure(desired) in {"created", "updated"}:
                changed.append(f"{desired.kind}/{desired.metadata.name}")
        if changed:
            log.info("consumer %s: wrote %s", spec.consumer_id, ", ".join(changed))
        return None

    def _starting(self, record: _Record, message: str) -> DeploymentStatus:
        return DeploymentStatus("starting", None, record.to_detail(), message)

    def _not_available(
        self,
        spec: ConsumerSpec,
        record: _Record,
        deployment: Any | None,
        now: float,
        waiting: str = "waiting for the workflow-api to become available",
    ) -> DeploymentStatus:
        since = record.waiting_since if record.waiting_since is not None else now
        if record.waiting_since is None and record.was_ready:
            log.warning("consumer %s: workflow-api no longer available", spec.consumer_id)
        timeout = self._kubernetes.readiness_timeout_seconds
        if now - since <= timeout:
            return self._starting(replace(record, waiting_since=since), waiting)
        objects = config.deployment_spec(self._kubernetes, spec, self._env)
        namespace = objects.namespace
        try:
            pods = self._api.list_pods(namespace, objects.selector_labels())
            cause = describe_failure(deployment, pods) if deployment else waiting
        except KubernetesApiError as error:
            cause = f"(its pods could not be read: {error})"
        what = f"the workflow-api in namespace {namespace} is not available after {timeout:g} s"
        return self._fail(spec, record, f"{what}: {cause}")

    def _trouble(
        self,
        spec: ConsumerSpec,
        record: _Record,
        now: float,
        error: RetriedWorkError,
    ) -> DeploymentStatus:
        """An API or storage error: temporary ones wait (a ready consumer stays ready), permanent
        ones fail at once (the client's errors already are one or the other)."""
        retryable = isinstance(error, TemporaryError)
        message = f"{type(error).__name__}: {error}"
        if not retryable:
            return self._fail(spec, record, message)
        log.warning("consumer %s: %s", spec.consumer_id, message)
        if record.was_ready and record.waiting_since is None:
            endpoint = config.public_url(self._kubernetes, spec)
            return DeploymentStatus("ready", endpoint, record.to_detail(), message)
        return self._not_available(spec, record, None, now, message)

    def _fail(self, spec: ConsumerSpec, record: _Record, message: str) -> DeploymentStatus:
        log.error("consumer %s: %s", spec.consumer_id, message)
        if record.was_ready:  # it keeps its objects and data; the next call waits afresh
            kept = replace(record, waiting_since=None).to_detail()
            return DeploymentStatus("failed", None, kept, message)
        try:  # a first deploy that failed leaves nothing behind
            namespace = config.namespace(self._kubernetes, spec)
            live = self._api.read("Namespace", namespace)
            if live is not None and _ours(live, spec):
                self._api.delete("Namespace", namespace)
            self._storage.remove(spec)
        except RetriedWorkError as error:  # the client's errors and storage's are taxonomy members
            log.warning("consumer %s: cleaning up failed: %s", spec.consumer_id, error)
            message += f" (cleaning up failed too: {error})"
        return DeploymentStatus("failed", None, _Record().to_detail(), message)

    def _still_there(self, namespace: str, live: Any) -> str:
        conditions = (live.status.conditions or []) if live.status else []
        why = "; ".join(f"{c.type}: {c.message}" for c in conditions if c.status == "True")
        return (
            f"namespace {namespace} still exists after"
            f" {self._kubernetes.removal_timeout_seconds:g} s{': ' + why if why else ''}"
        )
