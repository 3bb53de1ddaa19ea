"""`/admin` (admin scope; used by the provisioner): grant and revoke assets, purge the data.

Paths and the grant body are the contract `workflow_contracts.admin_api`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from workflow_api.db import Grant
from workflow_api.deps import AdminDep, ServicesDep
from workflow_api.ogc import iso_time
from workflow_contracts.admin_api import DATA, GRANT, GRANTS, PREFIX, GrantRequest

router = APIRouter(prefix=PREFIX, tags=["admin"])


def grant_document(grant: Grant) -> dict[str, Any]:
    return {
        "assetId": grant.asset_id,
        "agreementId": grant.agreement_id,
        "grantedAt": iso_time(grant.granted_at),
        "expiresAt": iso_time(grant.expires_at),
    }


@router.get(GRANTS)
def list_grants(services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    return {"grants": [grant_document(g) for g in services.assets.grants()]}


@router.put(GRANT)
def put_grant(
    asset_id: str, body: GrantRequest, services: ServicesDep, _: AdminDep
) -> dict[str, Any]:
    grant = services.assets.grant(
        asset_id, agreement_id=body.agreement_id, expires_at=body.expires_at
    )
    return grant_document(grant)


@router.delete(DATA)
def purge_data(services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Before teardown: dismiss every job, delete every job, upload and stored object."""
    dismissed = services.jobs.dismiss_all()
    removed_jobs = services.jobs.remove_all()
    removed_uploads = services.uploads.remove_all()
    return {
        "dismissedJobs": dismissed,
        "removedJobs": removed_jobs,
        "removedUploads": removed_uploads,
    }


@router.delete(GRANT)
def revoke_grant(asset_id: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """The asset disappears at once; its queued and running jobs are dismissed."""
    revoked = services.assets.revoke(asset_id)
    dismissed = services.jobs.dismiss_process(asset_id)
    return {"assetId": asset_id, "revoked": revoked, "dismissedJobs": dismissed}
