"""A provisioner as tests and benchmarks see it from outside: its admin API (grants, consumers),
what must be gone once a consumer is removed, and the provisioning URLs configured in EDC.

Both provisioner harnesses (`workflow_testkit.provisioner`, in this process, and
`workflow_testkit.edc.provisioner_process`, a subprocess) hold one `ProvisionerAdmin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workflow_testkit.polling import poll

FINAL_GRANT_STATES = {"revoked", "failed"}


def legacy_endpoint(base_url: str, secret: str | None) -> str:
    """The control-plane `provision-http` URL EDC calls (with `secret=` when one is set)."""
    return f"{base_url}/edc/provision" + (f"?secret={secret}" if secret else "")


def dataplane_endpoint(base_url: str, asset_id: str, secret: str | None) -> str:
    """The `data-plane-provision-http` URL configured in EDC for one asset."""
    return f"{base_url}/edc/dataplane/provision?asset={asset_id}" + (
        f"&secret={secret}" if secret else ""
    )


@dataclass(frozen=True)
class ProvisionerAdmin:
    """The admin API of the provisioner at `base_url`; its consumers' files under `data_dir`."""

    base_url: str
    admin_token: str
    data_dir: Path

    def client(self) -> httpx.Client:
        """A client of the provisioner with the admin token (the caller closes it)."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        """GET `/admin<path>`: the document (an error status raises)."""
        with self.client() as client:
            return client.get(f"/admin{path}", params=params).raise_for_status().json()

    def grants(self, **params: Any) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = self.get("/grants", **params)["grants"]
        return grants

    def consumers(self) -> list[dict[str, Any]]:
        consumers: list[dict[str, Any]] = self.get("/consumers")["consumers"]
        return consumers

    def consumer(self, consumer_id: str) -> dict[str, Any] | None:
        return next((c for c in self.consumers() if c["id"] == consumer_id), None)

    def grant_for(self, transfer_process_id: str) -> dict[str, Any] | None:
        return next(
            (g for g in self.grants() if g["transferProcessId"] == transfer_process_id), None
        )

    def wait_for_grant(
        self, transfer_process_id: str, states: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            grant = self.grant_for(transfer_process_id)
            return grant if grant and grant["state"] in states else None

        return poll(reached, timeout, f"grant of {transfer_process_id} in {states}")

    def assert_nothing_left(
        self, consumer_id: str, endpoint: str | None = None, timeout: float = 30
    ) -> None:
        """The consumer removed, its files gone, no grant of it in a non-final state, and (with
        `endpoint`) no workflow-api answering there."""
        consumer = poll(
            lambda: (c := self.consumer(consumer_id)) and c["state"] == "removed" and c,
            timeout,
            f"consumer {consumer_id} removed",
        )
        assert not (self.data_dir / "consumers" / consumer["slug"]).exists()
        open_grants = [
            g
            for g in self.grants()
            if g["consumerId"] == consumer_id and g["state"] not in FINAL_GRANT_STATES
        ]
        assert open_grants == []
        if endpoint is None:
            return
        try:
            httpx.get(f"{endpoint}/conformance", timeout=2)
        except httpx.TransportError:
            return
        raise AssertionError(f"the workflow-api at {endpoint} still answers")
