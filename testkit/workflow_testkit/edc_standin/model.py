"""The stand-in's in-memory world: what EDC stores, plus everything the tests may assert on.

All mutation happens under `World.lock` (the server runs in a uvicorn thread, the driver in the
test's thread); `World.changed` is notified on every recorded exchange, delivery or state change,
so tests can wait instead of sleeping. The entities live in `entities` and are re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from workflow_testkit.edc_standin.entities import (
    TRANSFER_STATES,
    Asset,
    ContractAgreement,
    ContractDefinition,
    DataFlow,
    Delivery,
    Exchange,
    Fault,
    Flavour,
    Kind,
    Lease,
    PolicyDefinition,
    ProvisionedResource,
    ProvisionResource,
    TransferProcess,
    address_property,
    new_id,
)
from workflow_testkit.edc_standin.policy import Policy, valid_for

__all__ = [
    "TRANSFER_STATES",
    "Asset",
    "ContractAgreement",
    "ContractDefinition",
    "DataFlow",
    "Delivery",
    "Exchange",
    "Fault",
    "Lease",
    "PolicyDefinition",
    "ProvisionResource",
    "ProvisionedResource",
    "TransferProcess",
    "World",
    "address_property",
]

T = TypeVar("T")


@dataclass
class World:
    provider_id: str = "provider"
    edc_version: str = "0.18.0"  # Management API shapes: "0.15.1" or "0.18.0" (see wire)
    management_url: str = "http://localhost:8181/api/management"
    provisioning_url: str = "http://localhost:8765/provisioning"
    management_api_key: str | None = None  # x-api-key on the management context when set
    provisioning_api_key: str | None = None  # x-api-key on the provision context when set
    lease_seconds: float = 0.1
    permission_as_array: bool = False  # compacted `odrl:permission` as [..] instead of {..}
    management_outage: int | None = None  # e.g. 503: every Management API call answers it
    assets: dict[str, Asset] = field(default_factory=dict)
    policy_definitions: dict[str, PolicyDefinition] = field(default_factory=dict)
    contract_definitions: dict[str, ContractDefinition] = field(default_factory=dict)
    agreements: dict[str, ContractAgreement] = field(default_factory=dict)
    transfer_processes: dict[str, TransferProcess] = field(default_factory=dict)
    data_flows: dict[str, DataFlow] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    sent: list[Delivery] = field(default_factory=list)
    protocol_violations: list[str] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- building the world -------------------------------------------------------------------

    def add_asset(
        self, asset_id: str = "workflow-asset", data_address: dict[str, Any] | None = None
    ) -> Asset:
        address = data_address if data_address is not None else {"type": "WorkflowApi"}
        with self.lock:
            asset = self.assets[asset_id] = Asset(asset_id, address)
            return asset

    def add_agreement(
        self,
        asset_id: str = "workflow-asset",
        *,
        consumer_id: str = "consumer",
        policy: Policy | None = None,
        contract_id: str | None = None,
        agreement_id: str | None = None,
        signing_date: int | None = None,
    ) -> ContractAgreement:
        agreement = ContractAgreement(
            id=contract_id or new_id(),
            asset_id=asset_id,
            agreement_id=agreement_id or new_id(),
            consumer_id=consumer_id,
            provider_id=self.provider_id,
            contract_signing_date=int(time.time()) if signing_date is None else signing_date,
            policy=valid_for("30d") if policy is None else policy,
        )
        with self.lock:
            self.agreements[agreement.id] = agreement
            return agreement

    def add_transfer_process(
        self,
        contract_id: str,
        *,
        transfer_process_id: str | None = None,
        correlation_id: str | None = None,
        state: str = "INITIAL",
        transfer_type: str = "HttpData-PULL",
    ) -> TransferProcess:
        with self.lock:
            agreement = self.agreements[contract_id]
            process = TransferProcess(
                id=transfer_process_id or new_id(),
                asset_id=agreement.asset_id,
                contract_id=contract_id,
                correlation_id=correlation_id or new_id(),
                transfer_type=transfer_type,
                state=state,
            )
            self.transfer_processes[process.id] = process
            return process

    def new_transfer(
        self,
        *,
        asset_id: str = "workflow-asset",
        consumer_id: str = "consumer",
        policy: Policy | None = None,
        signing_date: int | None = None,
        data_address: dict[str, Any] | None = None,
        transfer_process_id: str | None = None,
    ) -> TransferProcess:
        """Asset (if new) + agreement + provider transfer process in state INITIAL."""
        with self.lock:
            if asset_id not in self.assets or data_address is not None:
                self.add_asset(asset_id, data_address)
            agreement = self.add_agreement(
                asset_id, consumer_id=consumer_id, policy=policy, signing_date=signing_date
            )
            return self.add_transfer_process(agreement.id, transfer_process_id=transfer_process_id)

    def add_data_flow(
        self, flow_id: str, *, endpoint: str | None = None, resource_ids: list[str] | None = None
    ) -> DataFlow:
        """A data flow for an existing transfer process, which moves to STARTUP_REQUESTED.

        `endpoint` defaults to the asset's `baseUrl` (asset type `ProvisionHttp`)."""
        with self.lock:
            process = self.transfer_processes[flow_id]
            url = endpoint or address_property(
                self.assets[process.asset_id].data_address, "baseUrl"
            )
            if not url:
                raise ValueError("the asset has no baseUrl; pass endpoint=")
            resources = {rid: ProvisionResource(rid) for rid in (resource_ids or [new_id()])}
            flow = self.data_flows[flow_id] = DataFlow(flow_id, url, resources)
            process.transition("STARTUP_REQUESTED")
            return flow

    # -- failure injection ----------------------------------------------------------------------

    def inject(self, channel: Literal["callback", "management"], *faults: Fault) -> None:
        with self.lock:
            self.faults.setdefault(channel, []).extend(faults)

    def fail_next_callbacks(self, count: int = 1, *, status: int = 503) -> None:
        """The next `count` callbacks (either flavour) get `status` and are not processed."""
        self.inject("callback", *[Fault(status=status)] * count)

    def drop_next_callbacks(self, count: int = 1, *, after_processing: bool = False) -> None:
        """The next `count` callbacks lose their connection before a complete answer; with
        `after_processing` EDC has applied them first (the provisioner never learns it)."""
        self.inject("callback", *[Fault(drop=True, after_processing=after_processing)] * count)

    def delay_next_callbacks(
        self, count: int = 1, *, seconds: float, after_processing: bool = False
    ) -> None:
        """The next `count` callbacks wait `seconds` before EDC handles them, or with
        `after_processing` EDC applies them at once and holds back only the answer."""
        self.inject("callback", *[Fault(delay=seconds, after_processing=after_processing)] * count)

    def fail_next_lookups(self, count: int = 1, *, status: int = 503) -> None:
        """The next `count` Management API calls answer `status`."""
        self.inject("management", *[Fault(status=status)] * count)

    def take_fault(self, channel: str) -> Fault | None:
        with self.lock:
            queued = self.faults.get(channel)
            return queued.pop(0) if queued else None

    # -- records and waiting --------------------------------------------------------------------

    def record(self, exchange: Exchange) -> None:
        with self.lock:
            self.exchanges.append(exchange)
            self.changed.notify_all()

    def record_delivery(self, delivery: Delivery) -> None:
        with self.lock:
            self.sent.append(delivery)
            self.changed.notify_all()

    def callbacks(
        self, entity_id: str | None = None, kind: Kind | None = None, flavour: Flavour | None = None
    ) -> list[Exchange]:
        with self.lock:
            return [
                exchange
                for exchange in self.exchanges
                if exchange.channel == "callback"
                and entity_id in (None, exchange.entity_id)
                and kind in (None, exchange.kind)
                and flavour in (None, exchange.flavour)
            ]

    def rejected_callbacks(self) -> list[Exchange]:
        """Callbacks EDC refused for their content (400, 401, 404, 415, 500), not 409 or faults."""
        return [
            exchange
            for exchange in self.callbacks()
            if exchange.fault is None and exchange.status not in (None, 204, 409)
        ]

    def wait_until(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Wait until `predicate()` (called under the lock) returns something truthy."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self.changed.wait(min(remaining, 0.05))  # leases expire without a notification

    def wait_for_callback(
        self,
        entity_id: str,
        kind: Kind = "provision",
        *,
        timeout: float = 5.0,
        status: int | None = 204,
        flavour: Flavour | None = None,
    ) -> Exchange:
        """The first callback for `entity_id` and `kind` answered `status` (None: any)."""

        def found() -> Exchange | None:
            matching = self.callbacks(entity_id, kind, flavour)
            return next((e for e in matching if status in (None, e.status)), None)

        return self.wait_until(found, timeout)

    def wait_for_state(
        self, transfer_process_id: str, state: str, *, timeout: float = 5.0
    ) -> TransferProcess:
        process = self.transfer_processes[transfer_process_id]
        return self.wait_until(lambda: process if process.state == state else None, timeout)
