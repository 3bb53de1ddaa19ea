"""EDC Management API v3 look-ups: transfer process → contract agreement (reference §2.9).

Responses are JSON-LD compacted with the default context, so EDC terms come unprefixed (or as
`edc:…`, or as full IRIs if a connector is configured differently): read them defensively.

Its errors are the retry taxonomy's (`workflow_common.retry`): EDC not knowing a transfer is
permanent (`NotFoundInEdcError`), anything else temporary (`EdcUnavailableError`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from provisioner.edc.wire import EDC_NAMESPACE
from workflow_common.retry import PermanentError, RetriedWorkError, TemporaryError

log = logging.getLogger(__name__)


class ManagementError(RetriedWorkError):
    """Base of the look-up errors."""


class NotFoundInEdcError(ManagementError, PermanentError):
    """EDC does not know the transfer process or agreement: never provision for it."""


class EdcUnavailableError(ManagementError, TemporaryError):
    """The Management API did not answer usefully; ask EDC to retry."""


# Transfer process states: in one of these, a provider transfer took our provision callback (we
# may have missed the answer) ...
PAST_PROVISIONING = {
    "PROVISIONED",
    "STARTING",
    "STARTED",
    "SUSPENDING",
    "SUSPENDED",
    "RESUMING",
    "RESUMED",
    "COMPLETING",
    "COMPLETED",
}
# ... in one of these, EDC ended it.
ENDED = {
    "TERMINATING",
    "TERMINATING_REQUESTED",
    "TERMINATED",
    "DEPROVISIONING",
    "DEPROVISIONING_REQUESTED",
    "DEPROVISIONED",
}


@dataclass(frozen=True)
class TransferProcessInfo:
    id: str
    asset_id: str
    contract_id: str
    state: str


@dataclass(frozen=True)
class AgreementInfo:
    id: str
    asset_id: str
    consumer_id: str
    provider_id: str
    signed_at: datetime
    policy: dict[str, Any]


def _term(document: dict[str, Any], name: str) -> Any:
    for key in (name, f"edc:{name}", EDC_NAMESPACE + name):
        if key in document:
            value = document[key]
            if isinstance(value, dict) and "@value" in value:
                return value["@value"]
            return value
    return None


def _required(document: dict[str, Any], name: str, what: str) -> str:
    value = _term(document, name)
    if value in (None, ""):
        raise EdcUnavailableError(f"{what} has no {name!r}")
    return str(value)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, EdcUnavailableError)


def management_http_client(
    base_url: str, *, api_key: str | None, timeout_seconds: float
) -> httpx.Client:
    """The one HTTP client to a Management API: its base URL, `x-api-key` when the context wants
    one, a timeout on every call (the verification reads and publishing both use it)."""
    headers = {"x-api-key": api_key} if api_key else {}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_seconds)


class ManagementClient:
    def __init__(self, base_url: str, *, api_key: str | None, timeout_seconds: float) -> None:
        self._client = management_http_client(
            base_url, api_key=api_key, timeout_seconds=timeout_seconds
        )

    def close(self) -> None:
        self._client.close()

    @retry(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    def _get(self, path: str) -> dict[str, Any]:
        try:
            response = self._client.get(path)
        except httpx.HTTPError as error:
            raise EdcUnavailableError(
                f"Management API unreachable: {type(error).__name__}"
            ) from error
        if response.status_code == 404:
            raise NotFoundInEdcError(f"EDC does not know {path}")
        if response.status_code in {401, 403}:
            raise EdcUnavailableError(f"Management API refused our key ({response.status_code})")
        if response.status_code != 200:
            raise EdcUnavailableError(f"Management API answered {response.status_code} for {path}")
        try:
            document = response.json()
        except ValueError as error:
            raise EdcUnavailableError(f"Management API sent no JSON for {path}") from error
        if not isinstance(document, dict):
            raise EdcUnavailableError(f"Management API sent an unexpected document for {path}")
        return document

    def terminate(self, transfer_process_id: str, reason: str) -> None:
        """Ask EDC to end a transfer we cannot serve; 409 (already ending or ended) is done."""
        body = {
            "@context": {"@vocab": EDC_NAMESPACE},
            "@type": "TerminateTransfer",
            "reason": reason,
        }
        path = f"/v3/transferprocesses/{transfer_process_id}/terminate"
        try:
            response = self._client.post(path, json=body)
        except httpx.HTTPError as error:
            raise EdcUnavailableError(
                f"Management API unreachable: {type(error).__name__}"
            ) from error
        if response.status_code not in (200, 204, 409):
            raise EdcUnavailableError(
                f"Management API answered {response.status_code} to terminating"
                f" {transfer_process_id}: {response.text[:200]}"
            )

    def transfer_process(self, transfer_process_id: str) -> TransferProcessInfo:
        document = self._get(f"/v3/transferprocesses/{transfer_process_id}")
        what = f"transfer process {transfer_process_id}"
        return TransferProcessInfo(
            id=str(document.get("@id", transfer_process_id)),
            asset_id=_required(document, "assetId", what),
            contract_id=_required(document, "contractId", what),
            state=str(_term(document, "state") or ""),
        )

    def agreement(self, contract_id: str) -> AgreementInfo:
        document = self._get(f"/v3/contractagreements/{contract_id}")
        what = f"contract agreement {contract_id}"
        signed = _required(document, "contractSigningDate", what)
        policy = _term(document, "policy")
        return AgreementInfo(
            id=contract_id,
            asset_id=_required(document, "assetId", what),
            consumer_id=_required(document, "consumerId", what),
            provider_id=str(_term(document, "providerId") or ""),
            signed_at=datetime.fromtimestamp(int(float(signed)), UTC),
            policy=policy if isinstance(policy, dict) else {},
        )
