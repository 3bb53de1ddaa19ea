"""The provisioner's calls to a consumer's workflow-api admin API (admin-scoped token; paths
and bodies: `workflow_contracts.admin_api`). Every failure is a `TemporaryError`."""

from __future__ import annotations

from datetime import datetime

import httpx

from provisioner.tokens.issuing import TokenService
from workflow_common.retry import TemporaryError
from workflow_contracts.admin_api import GrantRequest, data_path, grant_path


class WorkflowApiError(TemporaryError):
    """The workflow-api did not do what was asked; retried by the reconciler (until the
    grant's callback deadline)."""


class WorkflowApiClient:
    def __init__(self, tokens: TokenService, *, timeout_seconds: float = 10.0) -> None:
        self._tokens = tokens
        self._client = httpx.Client(timeout=timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, url: str, audience: str, body: object = None) -> None:
        headers = {"Authorization": f"Bearer {self._tokens.admin_token(audience)}"}
        try:
            response = self._client.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as error:
            raise WorkflowApiError(f"{method} {url}: {type(error).__name__}") from error
        if response.status_code >= 300:
            raise WorkflowApiError(f"{method} {url}: {response.status_code} {response.text[:200]}")

    def grant(
        self,
        endpoint: str,
        audience: str,
        asset_id: str,
        *,
        agreement_id: str | None,
        expires_at: datetime | None,
    ) -> None:
        body = GrantRequest(agreement_id=agreement_id, expires_at=expires_at)
        self._call("PUT", endpoint + grant_path(asset_id), audience, body.model_dump(mode="json"))

    def revoke(self, endpoint: str, audience: str, asset_id: str) -> None:
        self._call("DELETE", endpoint + grant_path(asset_id), audience)

    def purge(self, endpoint: str, audience: str) -> None:
        """Dismiss every job and delete every stored object of the consumer."""
        self._call("DELETE", endpoint + data_path(), audience)
