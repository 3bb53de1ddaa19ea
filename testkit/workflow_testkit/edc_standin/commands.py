"""What EDC does with the provisioner's callbacks and with its answers to EDC's requests.

Modelled on v0.15.1 `EntityCommandHandler` + `ProvisionResponsesHandler` /
`DeprovisionResponsesHandler` (legacy) and v0.18.0 `DataPlaneManagerImpl` / `DataFlow` (data
plane). Every function takes the `World` and runs under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workflow_testkit.edc_standin.entities import (
    TRANSFER_STATES,
    DataFlow,
    Kind,
    ProvisionedResource,
    ProvisionResource,
    TransferProcess,
    new_id,
)
from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.validation import (
    EDC_KEY_NAME,
    DeprovisionedResourceBody,
    ProvisionerCallback,
)
from workflow_testkit.edc_standin.wire import error_body, not_found_body

Outcome = Literal["accepted", "retry", "fatal"]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None  # JSON (an `ApiErrorDetail` list) or None
    text: bool = False


NO_CONTENT = Answer(204)
SERVER_ERROR = Answer(500)  # IllegalStateException -> UnexpectedExceptionMapper, empty body


def _conflict(message: str) -> Answer:
    return Answer(409, error_body(message, "ObjectConflict"))


def _state_conflict(command: str, process: TransferProcess) -> Answer:
    return _conflict(
        f"Could not execute {command} on TransferProcess with ID [{process.id}] "
        f"because it's {process.state}"
    )


def _lookup_process(world: World, transfer_process_id: str) -> TransferProcess | Answer:
    process = world.transfer_processes.get(transfer_process_id)
    if process is None:
        return Answer(404, not_found_body("TransferProcess", transfer_process_id))
    if process.lease.active():
        return _conflict(f"TransferProcess {transfer_process_id} is already leased")
    return process


# -- legacy callbacks (management context) ------------------------------------------------------


def provision_callback(
    world: World, transfer_process_id: str, callback: ProvisionerCallback
) -> Answer:
    """`AddProvisionedResourceCommand`: 409 past PROVISIONED; the content address is taken in
    any case, but only a matching `resourceDefinitionId` completes provisioning."""
    with world.lock:
        process = _lookup_process(world, transfer_process_id)
        if isinstance(process, Answer):
            return process
        if process.state_code > TRANSFER_STATES["PROVISIONED"]:
            return _state_conflict("AddProvisionedResourceCommand", process)
        assert callback.content_data_address is not None and callback.resource_name is not None
        address = {**callback.content_data_address, EDC_KEY_NAME: callback.resource_name}
        process.provisioned_resources.append(
            ProvisionedResource(
                id=new_id(),
                resource_definition_id=str(callback.resource_definition_id),
                asset_id=str(callback.asset_id),
                resource_name=callback.resource_name,
                has_token=callback.has_token,
                data_address=address,
                api_key_jwt=str(callback.api_key_jwt),
            )
        )
        process.content_data_address = address
        expected = process.resource_definition_id
        if expected is not None and callback.resource_definition_id == expected:
            if process.state not in (
                "PROVISIONING",
                "PROVISIONING_REQUESTED",
                "PROVISIONED",
                "REQUESTED",
            ):
                return SERVER_ERROR  # transitionProvisioned() throws
            process.transition("PROVISIONED")
        elif expected is not None:
            world.protocol_violations.append(
                f"provision callback for {process.id} carries resourceDefinitionId "
                f"{callback.resource_definition_id!r}, EDC sent {expected!r}: never PROVISIONED"
            )
        world.changed.notify_all()
        return NO_CONTENT


def deprovision_callback(
    world: World, transfer_process_id: str, body: DeprovisionedResourceBody
) -> Answer:
    """`DeprovisionCompleteCommand`: an unknown `provisionedResourceId` is logged and skipped."""
    with world.lock:
        process = _lookup_process(world, transfer_process_id)
        if isinstance(process, Answer):
            return process
        known = [r for r in process.provisioned_resources if r.id == body.provisioned_resource_id]
        for resource in known:
            resource.deprovisioned = True
        if not process.resources_to_deprovision():
            if process.state not in ("DEPROVISIONING", "DEPROVISIONING_REQUESTED", "DEPROVISIONED"):
                return SERVER_ERROR  # transitionDeprovisioned() throws
            process.transition("DEPROVISIONED")
        elif known and body.in_process:
            if process.state != "DEPROVISIONING":
                return SERVER_ERROR
            process.transition("DEPROVISIONING_REQUESTED")
        world.changed.notify_all()
        return NO_CONTENT


_TERMINABLE = frozenset(  # TransferProcess.canBeTerminated
    state
    for state, code in TRANSFER_STATES.items()
    if code <= TRANSFER_STATES["TERMINATING_REQUESTED"]
) - {"RESUMED", "COMPLETED"}


def terminate(world: World, transfer_process_id: str, reason: str) -> Answer:
    """`TerminateTransferCommand` on a provider process → TERMINATING."""
    with world.lock:
        process = _lookup_process(world, transfer_process_id)
        if isinstance(process, Answer):
            return process
        if process.state not in _TERMINABLE:
            return _state_conflict("TerminateTransferCommand", process)
        process.terminations.append(reason)
        process.error_detail = reason
        process.transition("TERMINATING")
        world.changed.notify_all()
        return NO_CONTENT


# -- data-plane callbacks (provision context) ---------------------------------------------------


def _lookup_flow(world: World, flow_id: str) -> DataFlow | Answer:
    flow = world.data_flows.get(flow_id)
    if flow is None:
        return Answer(404, not_found_body("DataFlow", flow_id))
    if flow.lease.active():
        return _conflict(f"DataFlow {flow_id} is already leased")
    return flow


def _settle_flow(flow: DataFlow, kind: Kind) -> None:
    """`DataFlow.resourceProvisioned` / `resourceDeprovisioned` state rules."""
    states = [resource.state for resource in flow.resources.values()]
    done, requested = (
        ("PROVISIONED", "PROVISION_REQUESTED")
        if kind == "provision"
        else ("DEPROVISIONED", "DEPROVISION_REQUESTED")
    )
    if all(state == done for state in states):
        flow.state = "PROVISION_NOTIFYING" if kind == "provision" else "DEPROVISIONED"
    elif all(state == requested for state in states if state != done):
        flow.state = requested


def dataplane_callback(
    world: World, kind: Kind, flow_id: str, resource_id: str, address: dict[str, Any] | None = None
) -> Answer:
    """Any state is accepted; an unknown resource id is silently ignored (204)."""
    with world.lock:
        flow = _lookup_flow(world, flow_id)
        if isinstance(flow, Answer):
            return flow
        resource = flow.resources.get(resource_id)
        if resource is not None:
            if kind == "provision":
                resource.data_address = address
            resource.state = "PROVISIONED" if kind == "provision" else "DEPROVISIONED"
            _settle_flow(flow, kind)
        world.changed.notify_all()
        return NO_CONTENT


# -- the provisioner's answers to EDC's requests ------------------------------------------------


def classify(status: int | None, *, exactly_200: bool = False) -> Outcome:
    """`HttpProviderProvisioner` / `ProvisionHttpClient`: None is an I/O error."""
    if status is None or 500 <= status <= 504:
        return "retry"
    if status == 200 or (not exactly_200 and 200 <= status <= 299):
        return "accepted"
    return "fatal"


def legacy_provision_answered(
    world: World, process: TransferProcess, status: int | None
) -> Outcome:
    outcome = classify(status)
    with world.lock:
        if outcome == "accepted":
            process.transition("PROVISIONING_REQUESTED")
        elif outcome == "fatal":
            process.error_detail = (
                f"Terminating transfer process {process.id} due to fatal provisioning errors: "
                f"HttpProviderProvisioner: received fatal error code: {status}"
            )
            process.transition("TERMINATING")
        world.changed.notify_all()
    return outcome


def legacy_deprovision_answered(
    world: World, process: TransferProcess, resource: ProvisionedResource, status: int | None
) -> Outcome:
    outcome = classify(status, exactly_200=True)
    with world.lock:
        if outcome == "accepted":
            resource.deprovisioned = True
            if not process.resources_to_deprovision():
                process.transition("DEPROVISIONED")
        elif outcome == "fatal":
            if status is not None and 200 <= status <= 299:
                world.protocol_violations.append(
                    f"deprovision request for {process.id} answered {status}; EDC accepts only 200"
                )
            process.error_detail = (
                f"Transitioning transfer process {process.id} failed to deprovision. Errors: \n"
                f"Received fatal error code: {status}"
            )
            process.transition("DEPROVISIONED")
        world.changed.notify_all()
    return outcome


def dataplane_answered(
    world: World, flow: DataFlow, resource: ProvisionResource, kind: Kind, status: int | None
) -> Outcome:
    """2xx → *_REQUESTED; any failure puts the flow back to (DE)PROVISIONING for a retry."""
    outcome = classify(status)
    with world.lock:
        if outcome == "accepted":
            resource.state = (
                "PROVISION_REQUESTED" if kind == "provision" else "DEPROVISION_REQUESTED"
            )
            _settle_flow(flow, kind)
            flow.error_detail = None
        else:
            flow.state = "PROVISIONING" if kind == "provision" else "DEPROVISIONING"
            flow.error_detail = f"ProvisionHttp: received {outcome} error code: {status}"
        world.changed.notify_all()
    return outcome
