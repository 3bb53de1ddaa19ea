"""Prometheus metrics of one provisioner, in a registry of its own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "provisioner_requests",
            "Provision and deprovision requests by EDC flavour, kind and outcome",
            ["flavour", "kind", "outcome"],
            registry=self.registry,
        )
        self.refused = Counter(
            "provisioner_refused_requests",
            "Requests refused by verification",
            registry=self.registry,
        )
        self.provisioning_seconds = Histogram(
            "provisioner_provisioning_seconds",
            "From the provision request to EDC accepting the callback",
            ["flavour"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.callback_failures = Counter(
            "provisioner_callback_failures",
            "Callback attempts EDC did not accept",
            ["kind"],
            registry=self.registry,
        )
        self.callback_unauthorized = Counter(
            "provisioner_callback_unauthorized",
            "Callbacks EDC refused with 401/403 (a missing or wrong x-api-key)",
            ["flavour", "kind"],
            registry=self.registry,
        )
        self.active_consumers = Gauge(
            "provisioner_active_consumers", "Consumers with a deployment", registry=self.registry
        )
        self.grants = Gauge(
            "provisioner_grants", "Grants by state", ["state"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
