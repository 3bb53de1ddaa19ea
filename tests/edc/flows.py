"""A consumer connector buying a provider's asset over DSP 2025-1: catalog → negotiation →
`HttpData-PULL` transfer, through the consumer's Management API v3."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from provisioner.edc.offering import CONTEXT, contract_permission
from workflow_testkit.edc.runtimes import API_KEY, EdcConnector

PROTOCOL = "dataspace-protocol-http:2025-1"


@dataclass(frozen=True)
class Purchase:
    catalog: dict[str, Any]  # the consumer's catalog answer, as received
    agreement_id: str
    transfer_id: str  # the consumer's transfer process (the provider's correlationId)


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise TimeoutError(f"{what} within {timeout} s")


def buy(
    consumer: EdcConnector, provider: EdcConnector, asset_id: str, validity: str = "30d"
) -> Purchase:
    dsp = f"{provider.protocol_url}/2025-1"
    with httpx.Client(
        base_url=consumer.management_url, headers={"x-api-key": API_KEY}, timeout=30
    ) as client:
        request = {
            "@context": CONTEXT,
            "@type": "CatalogRequest",
            "counterPartyId": "provider",
            "counterPartyAddress": dsp,
            "protocol": PROTOCOL,
        }
        catalog = client.post("/v3/catalog/request", json=request).json()
        datasets = catalog.get("dcat:dataset") or catalog.get("dataset") or []
        datasets = datasets if isinstance(datasets, list) else [datasets]
        dataset = next(d for d in datasets if d.get("@id") == asset_id)
        offer = dataset.get("odrl:hasPolicy") or dataset["hasPolicy"]  # 0.18.0: DSP terms
        offer = offer[0] if isinstance(offer, list) else offer
        policy = {
            "@id": offer["@id"],
            "@type": "odrl:Offer",
            "odrl:assigner": {"@id": "provider"},
            "odrl:target": {"@id": asset_id},
            "odrl:permission": [contract_permission(validity)],
        }
        contract = {
            "@context": CONTEXT,
            "@type": "ContractRequest",
            "counterPartyAddress": dsp,
            "protocol": PROTOCOL,
            "policy": policy,
        }
        negotiation = client.post("/v3/contractnegotiations", json=contract).json()["@id"]

        def finalized() -> Any:
            state = client.get(f"/v3/contractnegotiations/{negotiation}").json()
            if state.get("state") == "TERMINATED":
                raise AssertionError(f"negotiation terminated: {state}")
            return state if state.get("state") == "FINALIZED" else None

        agreement_id = wait_for(finalized, "negotiation finalized")["contractAgreementId"]
        transfer = {
            "@context": CONTEXT,
            "@type": "TransferRequest",
            "counterPartyAddress": dsp,
            "protocol": PROTOCOL,
            "contractId": agreement_id,
            "transferType": "HttpData-PULL",
        }
        transfer_id = client.post("/v3/transferprocesses", json=transfer).json()["@id"]
    return Purchase(catalog, agreement_id, transfer_id)


def provider_transfer(provider: EdcConnector, correlation_id: str) -> dict[str, Any] | None:
    """The provider's transfer process for the consumer's transfer `correlation_id`."""
    query = {"@context": CONTEXT, "@type": "QuerySpec", "limit": 200}
    answer = httpx.post(
        f"{provider.management_url}/v3/transferprocesses/request",
        json=query,
        headers={"x-api-key": API_KEY},
        timeout=10,
    )
    return next((t for t in answer.json() if t.get("correlationId") == correlation_id), None)
