"""What the stand-in EDC stores (assets, agreements, transfer processes, data flows) and the
records tests assert on (exchanges received, deliveries sent). Plain data; `model.World` owns it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from workflow_testkit.edc_standin.policy import EDC_NAMESPACE, Policy

Flavour = Literal["legacy", "dataplane"]
Kind = Literal["provision", "deprovision"]

#: `TransferProcessStates` (v0.15.1), name -> code; ordering matters for "past PROVISIONED".
TRANSFER_STATES: dict[str, int] = {
    "INITIAL": 100, "PROVISIONING": 200, "PROVISIONING_REQUESTED": 250, "PROVISIONED": 300,
    "REQUESTING": 400, "REQUESTED": 500, "STARTING": 550, "STARTUP_REQUESTED": 570,
    "STARTED": 600, "SUSPENDING": 650, "SUSPENDING_REQUESTED": 675, "SUSPENDED": 700,
    "RESUMING": 720, "RESUMED": 725, "COMPLETING": 750, "COMPLETING_REQUESTED": 775,
    "COMPLETED": 800, "TERMINATING": 825, "TERMINATING_REQUESTED": 840, "TERMINATED": 850,
    "DEPROVISIONING": 900, "DEPROVISIONING_REQUESTED": 950, "DEPROVISIONED": 1000,
}  # fmt: skip


def new_id() -> str:
    return str(uuid.uuid4())


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def address_property(properties: dict[str, Any] | None, key: str) -> Any:
    """`DataAddress.getProperty`: the EDC-namespaced key first, then the key as given."""
    if properties is None:
        return None
    value = properties.get(EDC_NAMESPACE + key)
    return properties.get(key) if value is None else value


@dataclass
class Lease:
    """EDC's entity lease: held while the stand-in waits for the provisioner's answer, then kept
    for `World.lease_seconds` while it "processes" the answer."""

    held: bool = False
    until: float = 0.0

    def active(self) -> bool:
        return self.held or time.monotonic() < self.until


@dataclass
class Asset:
    id: str
    data_address: dict[str, Any]  # DataAddress properties, short EDC keys
    properties: dict[str, Any] = field(default_factory=dict)
    private_properties: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=now_millis)


@dataclass
class PolicyDefinition:
    id: str
    policy: Policy
    private_properties: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=now_millis)


@dataclass
class ContractDefinition:
    id: str
    access_policy_id: str
    contract_policy_id: str
    assets_selector: list[dict[str, Any]]  # Criterion: operandLeft, operator, operandRight
    private_properties: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=now_millis)


@dataclass
class ContractAgreement:
    id: str  # provider-local id = the transfer process's contractId
    asset_id: str
    agreement_id: str  # shared by both parties
    consumer_id: str
    provider_id: str
    contract_signing_date: int  # epoch seconds
    policy: Policy


@dataclass
class ProvisionedResource:
    """Legacy `HttpProvisionedContentResource`, created by an accepted provision callback."""

    id: str  # random, never told to the provisioner
    resource_definition_id: str
    asset_id: str
    resource_name: str
    has_token: bool
    data_address: dict[str, Any]
    api_key_jwt: str
    deprovisioned: bool = False


@dataclass
class TransferProcess:
    """A provider transfer process."""

    id: str
    asset_id: str
    contract_id: str
    correlation_id: str
    transfer_type: str = "HttpData-PULL"
    state: str = "INITIAL"
    state_timestamp: int = field(default_factory=now_millis)
    error_detail: str | None = None
    resource_definition_id: str | None = None  # legacy: set when the first request is sent
    content_data_address: dict[str, Any] | None = None  # DataAddress properties
    provisioned_resources: list[ProvisionedResource] = field(default_factory=list)
    terminations: list[str] = field(default_factory=list)  # reasons, in order
    lease: Lease = field(default_factory=Lease)

    def transition(self, state: str) -> None:
        assert state in TRANSFER_STATES, state
        self.state = state
        self.state_timestamp = now_millis()

    @property
    def state_code(self) -> int:
        return TRANSFER_STATES[self.state]

    def content_property(self, key: str) -> Any:
        return address_property(self.content_data_address, key)

    def resources_to_deprovision(self) -> list[ProvisionedResource]:
        return [resource for resource in self.provisioned_resources if not resource.deprovisioned]


@dataclass
class ProvisionResource:
    """Data-plane `ProvisionResource`: CREATED → PROVISION_REQUESTED → PROVISIONED →
    DEPROVISION_REQUESTED → DEPROVISIONED."""

    id: str
    state: str = "CREATED"
    data_address: dict[str, Any] | None = None  # properties from the provision callback


@dataclass
class DataFlow:
    """Data-plane flow; its id is the provider transfer process id (`flowId`)."""

    id: str
    endpoint: str  # the asset's `baseUrl`, where EDC POSTs the provision request
    resources: dict[str, ProvisionResource]
    state: str = "PROVISIONING"
    error_detail: str | None = None
    lease: Lease = field(default_factory=Lease)

    @property
    def resource_ids(self) -> list[str]:
        return list(self.resources)

    def provisioned_data_address(self) -> dict[str, Any] | None:
        """`DataFlow.provisionedDataAddress`: the first provisioned resource's address."""
        for resource in self.resources.values():
            if resource.data_address is not None:
                return resource.data_address
        return None


@dataclass(frozen=True)
class Exchange:
    """One request the stand-in received, with the status it answered (None: dropped)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON; the text if it is not JSON; None if empty
    raw_body: bytes
    status: int | None
    channel: Literal["callback", "management", "other"]
    flavour: Flavour | None = None
    kind: Kind | None = None
    entity_id: str | None = None  # transfer process id / flow id
    resource_id: str | None = None  # data-plane provisionResourceId
    fault: str | None = None  # injected: "status", "drop", "drop-after-processing", "delay"


@dataclass(frozen=True)
class Delivery:
    """One provision/deprovision request the stand-in sent, and how EDC classified the answer."""

    flavour: Flavour
    kind: Kind
    entity_id: str
    url: str
    body: dict[str, Any]
    status: int | None  # None: I/O error (connection refused, timeout, dropped)
    outcome: Literal["accepted", "retry", "fatal", "skipped"]
    error: str | None = None


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # answer this status without processing
    drop: bool = False  # close the connection without a complete answer
    after_processing: bool = False  # with drop: process first, then drop the answer
    delay: float = 0.0  # seconds to wait before handling
