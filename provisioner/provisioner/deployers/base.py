"""The Deployer protocol.

The reconciler calls `deploy` again and again until it answers `ready` (it must never block for
long: start what is missing, check what is there, return); it also calls it on ready consumers to
supervise them (a dead deployment is restarted and answers `starting`). `detail` is the deployer's
own bookkeeping (ports, process ids, object names): the caller persists what `deploy` returns and
hands it back on the next call, including after a provisioner restart. A `failed` answer is
retried by calling `deploy` again; a `ready` deployment may go back to `starting` (restarted or
unhealthy). All calls come from the reconciler's one thread.

`endpoint` is what the consumer is given. Where the provisioner itself reaches the workflow-api
may differ (Kubernetes: its Service inside the cluster, not the Ingress): a deployer then puts it
in `detail` under `admin_endpoint`, and the provisioner's calls use `admin_endpoint(...)`.

A deployer whose removal takes long (Kubernetes: a namespace terminates in seconds to minutes)
also implements `RemovesInSteps`: the reconciler then removes a consumer one quick step per pass
instead of waiting in `remove`, so other consumers and grants go on meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

DeploymentState = Literal["starting", "ready", "failed"]


@dataclass(frozen=True)
class ConsumerSpec:
    consumer_id: str
    slug: str  # DNS-label-safe, unique per consumer, derived from the id
    token_audience: str
    grants: tuple[str, ...] = ()  # asset ids of its live grants; a deployer may show them


@dataclass(frozen=True)
class DeploymentStatus:
    state: DeploymentState
    endpoint: str | None  # the workflow-api's base URL, once known
    detail: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def admin_endpoint(endpoint: str | None, detail: Mapping[str, Any]) -> str | None:
    """Where the provisioner calls the workflow-api's admin API (see the module docstring)."""
    internal = detail.get("admin_endpoint")
    return internal if isinstance(internal, str) and internal else endpoint


class Deployer(Protocol):
    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        """Create, adopt or check the consumer's workflow-api; idempotent and quick."""

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        """Stop it and delete its data; idempotent; returns when it is gone (bounded time)."""

    def prepare(self) -> None:
        """Called once when the reconciler starts: warm up (e.g. pre-start a spare)."""

    def close(self) -> None:
        """Called when the reconciler stops: let go of what `prepare` holds."""


@runtime_checkable
class RemovesInSteps(Protocol):
    def removal_step(self, spec: ConsumerSpec, detail: dict[str, Any]) -> str | None:
        """Start the removal or check on it, without waiting: None once everything is gone
        (the consumer's data included), else what it is still waiting for. Idempotent; raises
        a `TemporaryError` when the removal does not finish in the deployer's bounded time."""
