"""The EDC side that sends: provision/deprovision requests to the provisioner under test.

Each `send_*` call is one iteration of EDC's state machine for one resource: it leases the
entity, POSTs EDC's exact body, releases the lease `World.lease_seconds` after the answer (a
callback meanwhile gets 409), and applies EDC's classification of the answer (reference §1.5,
§2.5). A retry is simply calling `send_*` again. Every attempt is stored in `World.sent`.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from workflow_testkit.edc_standin import commands, wire
from workflow_testkit.edc_standin.entities import (
    Delivery,
    Exchange,
    Flavour,
    Kind,
    Lease,
    TransferProcess,
    new_id,
)
from workflow_testkit.edc_standin.model import World

# Loading the CA bundle costs ~0.1 s per client; share one context.
_ssl_context = functools.cache(ssl.create_default_context)
_CAN_BE_DEPROVISIONED = ("COMPLETING", "TERMINATING", "COMPLETED", "TERMINATED", "DEPROVISIONING")


class Driver:
    def __init__(
        self,
        world: World,
        *,
        legacy_endpoint: str | None = None,
        policy_scope: str = wire.DEFAULT_POLICY_SCOPE,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        """`legacy_endpoint` is `provisioner.http.entries.<n>.endpoint` (may carry a query);
        data-plane requests go to the flow's endpoint (the asset's `baseUrl`). A given `client`
        (e.g. Starlette's TestClient) is used as is and not closed."""
        self.world = world
        self.legacy_endpoint = legacy_endpoint
        self.policy_scope = policy_scope
        self._own_client = client is None
        # OkHttp follows redirects (307/308 keep the POST), so does this client.
        self.client = client or httpx.Client(
            timeout=timeout, follow_redirects=True, verify=_ssl_context()
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    # -- legacy provision-http ------------------------------------------------------------------

    def send_legacy_provision(
        self,
        transfer_process_id: str,
        *,
        endpoint: str | None = None,
        policy_scope: str | None = None,
    ) -> Delivery:
        """INITIAL/PROVISIONING → POST → 2xx PROVISIONING_REQUESTED, 500-504/I/O stays
        PROVISIONING, anything else TERMINATING. The resource definition id is kept across
        retries."""
        with self.world.lock:
            process = self.world.transfer_processes[transfer_process_id]
            if process.state not in ("INITIAL", "PROVISIONING"):
                raise ValueError(
                    f"EDC provisions only from INITIAL/PROVISIONING, not {process.state}"
                )
            if process.resource_definition_id is None:
                process.resource_definition_id = new_id()
            process.transition("PROVISIONING")
            body = wire.legacy_provision_request(
                process,
                self.world.agreements[process.contract_id],
                management_url=self.world.management_url,
                policy_scope=policy_scope or self.policy_scope,
            )
        url = self._legacy_url(endpoint)
        with self._leased(process.lease):
            status, error = self._post(url, body)
            outcome = commands.legacy_provision_answered(self.world, process, status)
        return self._record("legacy", "provision", process.id, url, body, status, outcome, error)

    def send_legacy_deprovision(
        self,
        transfer_process_id: str,
        *,
        endpoint: str | None = None,
        resource_id: str | None = None,
    ) -> Delivery:
        """For a terminated/completed process: one request per provisioned resource (the oldest
        not yet deprovisioned unless `resource_id`); exactly 200 → DEPROVISIONED, 500-504/I/O
        stays DEPROVISIONING, anything else (201/202/204 too) → DEPROVISIONED with errorDetail
        and a `World.protocol_violations` entry for a non-200 2xx. Without a provisioned
        resource EDC sends nothing (outcome "skipped")."""
        with self.world.lock:
            process = self.world.transfer_processes[transfer_process_id]
            if process.state not in _CAN_BE_DEPROVISIONED:
                raise ValueError(
                    f"EDC deprovisions only after termination, not from {process.state}"
                )
            process.transition("DEPROVISIONING")
            pending = process.resources_to_deprovision()
            resource = next((r for r in pending if resource_id in (None, r.id)), None)
            if resource is None:
                process.transition("DEPROVISIONED")
                return self._record(
                    "legacy", "deprovision", process.id, "", {}, None, "skipped", None
                )
            body = wire.legacy_deprovision_request(
                process,
                self.world.agreements[process.contract_id],
                resource,
                management_url=self.world.management_url,
            )
        url = self._legacy_url(endpoint)
        with self._leased(process.lease):
            status, error = self._post(url, body)
            outcome = commands.legacy_deprovision_answered(self.world, process, resource, status)
        return self._record("legacy", "deprovision", process.id, url, body, status, outcome, error)

    # -- data-plane-provision-http ----------------------------------------------------------------

    def send_dataplane_provision(
        self, flow_id: str, *, endpoint: str | None = None, resource_id: str | None = None
    ) -> Delivery:
        """POST `{type, provisionResourceId, flowId, callbackAddress}` for a resource still to
        provision (CREATED): 2xx → PROVISION_REQUESTED; any failure (retry or fatal) puts the flow
        back to PROVISIONING with an error detail."""
        return self._send_dataplane("provision", flow_id, endpoint, resource_id, "CREATED")

    def send_dataplane_deprovision(
        self, flow_id: str, *, endpoint: str | None = None, resource_id: str | None = None
    ) -> Delivery:
        """Same for a PROVISIONED resource (only those are deprovisioned), and only once the
        transfer process is ending (the data plane deprovisions when the control plane terminates
        or completes the transfer: `terminate` first); 2xx → DEPROVISION_REQUESTED, then the
        callback makes it DEPROVISIONED."""
        with self.world.lock:
            process = self.world.transfer_processes.get(flow_id)
            if process is not None and process.state not in _CAN_BE_DEPROVISIONED:
                raise ValueError(
                    f"the data plane deprovisions only after termination, not in {process.state}"
                )
        return self._send_dataplane("deprovision", flow_id, endpoint, resource_id, "PROVISIONED")

    def _send_dataplane(
        self, kind: Kind, flow_id: str, endpoint: str | None, resource_id: str | None, state: str
    ) -> Delivery:
        with self.world.lock:
            flow = self.world.data_flows[flow_id]
            candidates = [r for r in flow.resources.values() if resource_id in (None, r.id)]
            resource = next((r for r in candidates if r.state == state), None)
            if resource is None:
                return self._record("dataplane", kind, flow_id, "", {}, None, "skipped", None)
            flow.state = "PROVISIONING" if kind == "provision" else "DEPROVISIONING"
            body = wire.dataplane_request(
                kind,
                provision_resource_id=resource.id,
                flow_id=flow.id,
                callback_address=self.world.provisioning_url,
            )
        url = endpoint or flow.endpoint
        with self._leased(flow.lease):
            status, error = self._post(url, body)
            outcome = commands.dataplane_answered(self.world, flow, resource, kind, status)
        return self._record("dataplane", kind, flow_id, url, body, status, outcome, error)

    # -- termination and waiting ----------------------------------------------------------------

    def terminate(self, transfer_process_id: str, reason: str = "Policy evaluation failed") -> None:
        """What the policy monitor (or a counter-party) does: TERMINATING, then TERMINATED, after
        which EDC deprovisions (`send_legacy_deprovision` / `send_dataplane_deprovision`)."""
        answer = commands.terminate(self.world, transfer_process_id, reason)
        if answer.status != 204:
            raise ValueError(f"cannot terminate {transfer_process_id}: {answer.body}")
        with self.world.lock:
            self.world.transfer_processes[transfer_process_id].transition("TERMINATED")

    def wait_for_callback(
        self,
        entity_id: str,
        kind: Kind = "provision",
        timeout: float = 5.0,
        *,
        status: int | None = 204,
        flavour: Flavour | None = None,
    ) -> Exchange:
        return self.world.wait_for_callback(
            entity_id, kind, timeout=timeout, status=status, flavour=flavour
        )

    def wait_for_state(
        self, transfer_process_id: str, state: str, timeout: float = 5.0
    ) -> TransferProcess:
        return self.world.wait_for_state(transfer_process_id, state, timeout=timeout)

    # -- plumbing -------------------------------------------------------------------------------

    def _legacy_url(self, endpoint: str | None) -> str:
        url = endpoint or self.legacy_endpoint
        if url is None:
            raise ValueError("no legacy endpoint: pass endpoint= or Driver(legacy_endpoint=...)")
        return url

    @contextmanager
    def _leased(self, lease: Lease) -> Iterator[None]:
        """Hold the lease while sending and applying the answer, then `lease_seconds` more."""
        with self.world.lock:
            lease.held = True
        try:
            yield
        finally:
            with self.world.lock:
                lease.held = False
                lease.until = time.monotonic() + self.world.lease_seconds

    def _post(self, url: str, body: dict[str, Any]) -> tuple[int | None, str | None]:
        try:
            response = self.client.post(
                url, content=wire.encode(body), headers=wire.REQUEST_HEADERS
            )
            return response.status_code, None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _record(
        self,
        flavour: Flavour,
        kind: Kind,
        entity_id: str,
        url: str,
        body: dict[str, Any],
        status: int | None,
        outcome: Any,
        error: str | None,
    ) -> Delivery:
        delivery = Delivery(flavour, kind, entity_id, url, body, status, outcome, error)
        self.world.record_delivery(delivery)
        return delivery
