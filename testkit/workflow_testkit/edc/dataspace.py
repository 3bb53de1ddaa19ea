"""A provider and a consumer connector with their provisioner, and what a real consumer does
through its connector's Management API: catalog → negotiate → HttpData-PULL transfer → EDR →
its workflow-api endpoint and token → terminate. `open_dataspace` starts all three, the provider
configured for the provisioner and the offering published by `provisioner publish`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from provisioner.edc.offering import contract_definition_id
from workflow_testkit.edc.connectors import DSP_PROTOCOL, EDC, Connector, query
from workflow_testkit.edc.provisioner_process import ProvisionerProcess
from workflow_testkit.polling import poll

ODRL = "http://www.w3.org/ns/odrl/2/"
CONTEXT = {"@vocab": EDC, "odrl": ODRL}
PROVIDER_ID = "provider"
VERIFICATION_RACE_ATTEMPTS = 3
RACES = ("negotiation cannot be verified", "negotiation cannot be agreed")


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _definition_of(offer_id: str) -> str:
    first = offer_id.split(":", maxsplit=1)[0]
    return base64.b64decode(first + "=" * (-len(first) % 4)).decode()


@dataclass
class Connection:
    """A provider and a consumer connector of one EDC version, driven through their Management
    APIs and the consumer-facing URLs only."""

    version: str
    provider: Connector
    consumer: Connector

    @property
    def legacy(self) -> bool:
        return self.version == "0.15.1"

    def catalog(self, consumer: Connector | None = None) -> dict[str, Any]:
        """The consumer's catalog request to the provider, answered as it is."""
        with (consumer or self.consumer).management() as client:
            answer = client.post(
                "/v3/catalog/request",
                json={
                    "@context": CONTEXT,
                    "@type": "CatalogRequest",
                    "counterPartyAddress": self.provider.dsp_url,
                    "counterPartyId": PROVIDER_ID,
                    "protocol": DSP_PROTOCOL,
                },
            )
        assert answer.status_code == 200, answer.text
        catalog: dict[str, Any] = answer.json()
        return catalog

    def negotiate(self, asset_id: str, consumer: Connector | None = None) -> str:
        """The agreement id for the offer `provisioner publish` made of `asset_id`, sent back
        exactly as the catalog gave it."""
        consumer = consumer or self.consumer
        definition_id = contract_definition_id(asset_id)
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
            for attempt in range(VERIFICATION_RACE_ATTEMPTS):
                state = self._negotiation(client, policy)
                if state.get("state") == "FINALIZED":
                    return str(state["contractAgreementId"])
                # EDC's own race (seen on 0.15.1 under load): a message reaches the other side
                # before that side recorded its previous one as sent (the agreement before the
                # consumer's REQUESTED, the verification before the provider's AGREED); the
                # negotiation is terminated. A consumer negotiates again.
                detail = f"{state.get('errorDetail')} {self._provider_side_error(state)}"
                raced = any(race in detail for race in RACES)
                assert raced and attempt + 1 < VERIFICATION_RACE_ATTEMPTS, (state, detail)
        raise AssertionError("unreachable")

    def _provider_side_error(self, consumer_side: dict[str, Any]) -> str:
        """The provider's errorDetail of a negotiation (its id is the consumer's correlationId)."""
        with self.provider.management() as client:
            answer = client.get(f"/v3/contractnegotiations/{consumer_side.get('correlationId')}")
        return str(answer.json().get("errorDetail")) if answer.status_code == 200 else ""

    def _negotiation(self, client: httpx.Client, policy: dict[str, Any]) -> dict[str, Any]:
        """One contract request for `policy`; the negotiation once FINALIZED or TERMINATED."""
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

        def ended() -> dict[str, Any] | None:
            state: dict[str, Any] = client.get(f"/v3/contractnegotiations/{negotiation}").json()
            return state if state.get("state") in {"FINALIZED", "TERMINATED"} else None

        return poll(ended, 30, f"negotiation {negotiation} FINALIZED")

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


@dataclass
class Dataspace(Connection):
    provisioner: ProvisionerProcess

    def publish(self) -> str:
        """`provisioner publish`: the provisioner's catalog offered in the provider."""
        return self.provisioner.publish()


# How often EDC's policy monitor checks running transfers: long enough that the provisioner's
# own timer (every 0.2 s) ends an expired contract first, unless it is told to wait.
MONITOR_SECONDS = 4


def provisioner_environment(provider: Connector) -> dict[str, str]:
    """The provisioner's settings for this provider: its Management API, the flavour of its
    version (0.15.1: legacy, whose callback goes to the Management API context)."""
    environment = {
        "PROVISIONER_EDC_MANAGEMENT_URL": provider.management_url,
        "PROVISIONER_EDC_MANAGEMENT_API_KEY": provider.api_key,
        "PROVISIONER_DATAPLANE_ADDRESS": "endpoint",
    }
    if provider.version == "0.15.1":
        environment["PROVISIONER_EDC_FLAVOUR"] = "legacy"
        environment["PROVISIONER_EDC_CALLBACK_API_KEY"] = provider.api_key
    return environment


def provider_settings(version: str, provisioner: ProvisionerProcess) -> dict[str, str]:
    """The provider's settings for the provisioner (0.15.1: the legacy provision endpoint)."""
    if version == "0.15.1":
        return {
            "provisioner.http.entries.workflow.endpoint": provisioner.legacy_endpoint,
            "edc.policy.monitor.state-machine.iteration-wait-millis": str(MONITOR_SECONDS * 1000),
        }
    return {"edc.policy.monitor.period": f"PT{MONITOR_SECONDS}S"}


@contextmanager
def open_dataspace(
    version: str,
    root: Path,
    environment: dict[str, str] | None = None,
    assets_dir: Path | None = None,
) -> Iterator[Dataspace]:
    """Provider, consumer and provisioner started (fresh in-memory connectors, a fresh
    provisioner database in `root`), the catalog published; all stopped by their pids after.
    `environment`: provisioner settings on top of `provisioner_environment`."""
    provisioner = ProvisionerProcess(root / "provisioner", {})
    if assets_dir is not None:
        provisioner.assets_dir = assets_dir
    provider = Connector(version, "provider", root / "provider")
    provider.extra = provider_settings(version, provisioner)
    provisioner.environment = provisioner_environment(provider) | (environment or {})
    consumer = Connector(version, "consumer", root / "consumer")
    started: list[Connector | ProvisionerProcess] = []
    try:
        for part in (provider, consumer, provisioner):
            part.start()
            started.append(part)
        space = Dataspace(version, provider, consumer, provisioner)
        space.publish()
        yield space
    finally:
        for part in reversed(started):
            part.stop()
