"""A provider and a consumer connector with their provisioner, and what a real consumer does
through its connector's Management API: catalog → negotiate → HttpData-PULL transfer → EDR →
its workflow-api endpoint and token → terminate."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from workflow_testkit.edc.connectors import DSP_PROTOCOL, EDC, Connector, query
from workflow_testkit.edc.polling import poll
from workflow_testkit.edc.provisioner_process import ProvisionerProcess

ODRL = "http://www.w3.org/ns/odrl/2/"
CONTEXT = {"@vocab": EDC, "odrl": ODRL}
PROVIDER_ID = "provider"


def _created(answer: httpx.Response) -> None:
    assert answer.status_code in (200, 409), answer.text  # 409: already there (idempotent)


def register_offering(
    provider: Connector,
    provisioner: ProvisionerProcess,
    asset_id: str,
    *,
    definition_id: str,
    validity: str | None = None,
) -> None:
    """Asset, policies and contract definition in the provider, straight through its Management
    API (to be replaced by `provisioner publish`). `validity`: e.g. "20s" = an agreement valid
    until 20 s after signing (EDC's inForceDate constraint)."""
    if provider.version == "0.15.1":
        address = {"type": "WorkflowApi"}
    else:
        address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint(asset_id)}
    permission: dict[str, Any] = {"action": "use"}
    policy_id = "open"
    if validity is not None:
        policy_id = f"valid-{validity}"
        permission["constraint"] = {
            "leftOperand": f"{EDC}inForceDate",
            "operator": "lteq",
            "rightOperand": f"contractAgreement+{validity}",
        }
    with provider.management() as client:
        _created(
            client.post(
                "/v3/assets",
                json={
                    "@context": CONTEXT,
                    "@id": asset_id,
                    "properties": {"name": asset_id},
                    "dataAddress": address,
                },
            )
        )
        for pid, permissions in (("open", [{"action": "use"}]), (policy_id, [permission])):
            _created(
                client.post(
                    "/v3/policydefinitions",
                    json={
                        "@context": CONTEXT,
                        "@id": pid,
                        "policy": {
                            "@context": "http://www.w3.org/ns/odrl.jsonld",
                            "@type": "Set",
                            "permission": permissions,
                        },
                    },
                )
            )
        _created(
            client.post(
                "/v3/contractdefinitions",
                json={
                    "@context": CONTEXT,
                    "@id": definition_id,
                    "accessPolicyId": "open",
                    "contractPolicyId": policy_id,
                    "assetsSelector": [
                        {
                            "operandLeft": f"{EDC}id",
                            "operator": "=",
                            "operandRight": asset_id,
                        }
                    ],
                },
            )
        )


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _definition_of(offer_id: str) -> str:
    first = offer_id.split(":", maxsplit=1)[0]
    return base64.b64decode(first + "=" * (-len(first) % 4)).decode()


@dataclass
class Dataspace:
    version: str
    provider: Connector
    consumer: Connector
    provisioner: ProvisionerProcess

    @property
    def legacy(self) -> bool:
        return self.version == "0.15.1"

    def offer(self, asset_id: str, definition_id: str, validity: str | None = None) -> None:
        register_offering(
            self.provider,
            self.provisioner,
            asset_id,
            definition_id=definition_id,
            validity=validity,
        )

    def negotiate(
        self, asset_id: str, definition_id: str, consumer: Connector | None = None
    ) -> str:
        """The agreement id; the offer is sent back exactly as the catalog gave it."""
        consumer = consumer or self.consumer
        with consumer.management() as client:
            answer = client.post(
                "/v3/catalog/dataset/request",
                json={
                    "@context": CONTEXT,
                    "@type": "DatasetRequest",
                    "@id": asset_id,
                    "counterPartyAddress": self.provider.dsp_url,
                    "counterPartyId": PROVIDER_ID,
                    "protocol": DSP_PROTOCOL,
                },
            )
            assert answer.status_code == 200, answer.text
            dataset = answer.json()
            # 0.18.0 compacts with the DSP 2025-1 context, 0.15.1 with EDC's ("odrl:" prefix)
            key = next(
                k for k in ("hasPolicy", "odrl:hasPolicy", f"{ODRL}hasPolicy") if k in dataset
            )
            offers = _items(dataset[key])
            offer = next((o for o in offers if _definition_of(o["@id"]) == definition_id), None)
            assert offer is not None, f"no offer of {definition_id} in {dataset}"
            policy = {
                **offer,
                "@context": "http://www.w3.org/ns/odrl.jsonld",
                "assigner": PROVIDER_ID,
                "target": asset_id,
            }
            for key in ("odrl:assigner", "odrl:target"):
                policy.pop(key, None)
            answer = client.post(
                "/v3/contractnegotiations",
                json={
                    "@context": CONTEXT,
                    "@type": "ContractRequest",
                    "counterPartyAddress": self.provider.dsp_url,
                    "protocol": DSP_PROTOCOL,
                    "policy": policy,
                },
            )
            assert answer.status_code == 200, answer.text
            negotiation = answer.json()["@id"]

            def finalized() -> str | None:
                state = client.get(f"/v3/contractnegotiations/{negotiation}").json()
                assert state.get("state") != "TERMINATED", state
                return (
                    state.get("contractAgreementId") if state.get("state") == "FINALIZED" else None
                )

            return poll(finalized, 30, f"negotiation {negotiation} FINALIZED")

    def transfer(self, agreement_id: str, consumer: Connector | None = None) -> str:
        """Starts an HttpData-PULL transfer; the consumer's transfer process id."""
        consumer = consumer or self.consumer
        with consumer.management() as client:
            answer = client.post(
                "/v3/transferprocesses",
                json={
                    "@context": CONTEXT,
                    "@type": "TransferRequest",
                    "counterPartyAddress": self.provider.dsp_url,
                    "contractId": agreement_id,
                    "protocol": DSP_PROTOCOL,
                    "transferType": "HttpData-PULL",
                },
            )
            assert answer.status_code == 200, answer.text
            transfer_id: str = answer.json()["@id"]
            return transfer_id

    def state(self, connector: Connector, transfer_id: str) -> str:
        with connector.management() as client:
            answer = client.get(f"/v3/transferprocesses/{transfer_id}")
            assert answer.status_code == 200, answer.text
            return str(answer.json().get("state"))

    def wait_state(
        self, connector: Connector, transfer_id: str, states: set[str], timeout: float = 60
    ) -> str:
        def reached() -> str | None:
            state = self.state(connector, transfer_id)
            return state if state in states else None

        return poll(
            reached,
            timeout,
            f"{connector.role} transfer {transfer_id} in {states}",
        )

    def dataflow_state(self, flow: str) -> str:
        """0.18.0: the provider data plane's DataFlow state (its legacy signaling API)."""
        answer = httpx.get(self.provider.url("control", f"/control/v1/dataflows/{flow}/state"))
        assert answer.status_code == 200, answer.text
        document = answer.json()
        return str(document.get("state") or document.get(f"{EDC}state") or document)

    def provider_transfer(self, transfer_id: str) -> str:
        """The provider's transfer process (= the data-plane flow id) of a consumer's transfer:
        its correlationId is the consumer's id (the agreement ids differ between the sides in
        0.18.0)."""

        def find() -> str | None:
            with self.provider.management() as client:
                answer = client.post("/v3/transferprocesses/request", json=query())
            assert answer.status_code == 200, answer.text
            return next(
                (p["@id"] for p in answer.json() if p.get("correlationId") == transfer_id), None
            )

        return poll(find, 30, f"the provider's transfer of {transfer_id}")

    def workflow_access(
        self, transfer_id: str, consumer: Connector | None = None
    ) -> dict[str, str]:
        """The consumer's workflow-api endpoint and token, obtained from its EDR as a real
        consumer would (0.15.1: through the provider's public proxy with the EDR's token)."""
        consumer = consumer or self.consumer
        self.wait_state(consumer, transfer_id, {"STARTED"})
        with consumer.management() as client:

            def edr() -> dict[str, Any] | None:
                answer = client.get(f"/v3/edrs/{transfer_id}/dataaddress")
                return answer.json() if answer.status_code == 200 else None

            address = poll(edr, 30, f"the EDR of {transfer_id}")
        endpoint, authorization = address["endpoint"], address["authorization"]
        if not self.legacy:
            return {"endpoint": endpoint, "token": authorization}
        assert endpoint == self.provider.public_url, address
        answer = httpx.get(endpoint, headers={"Authorization": authorization}, timeout=15)
        assert answer.status_code == 200, answer.text
        credentials: dict[str, str] = answer.json()
        return credentials

    def terminate(self, transfer_id: str, consumer: Connector | None = None) -> None:
        with (consumer or self.consumer).management() as client:
            answer = client.post(
                f"/v3/transferprocesses/{transfer_id}/terminate",
                json={"@context": CONTEXT, "@type": "TerminateTransfer", "reason": "done"},
            )
            assert answer.status_code == 204, answer.text
