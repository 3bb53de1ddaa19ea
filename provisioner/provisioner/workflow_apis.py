"""The provisioner's calls to a consumer's workflow-api admin surface (admin-scoped token)."""

from __future__ import annotations

from datetime import datetime

import httpx

from provisioner.tokens.issuing import TokenService
from workflow_common.retry import TemporaryError


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
        body = {
            "agreement_id": agreement_id,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        self._call("PUT", f"{endpoint}/admin/grants/{asset_id}", audience, body)

    def revoke(self, endpoint: str, audience: str, asset_id: str) -> None:
        self._call("DELETE", f"{endpoint}/admin/grants/{asset_id}", audience)

    def purge(self, endpoint: str, audience: str) -> None:
        """Dismiss every job and delete every stored object of the consumer."""
        self._call("DELETE", f"{endpoint}/admin/data", audience)
