"""EDC's two HTTP provisioning protocols. Answer at once; the reconciler does the work.

Legacy: provision → any 2xx; deprovision → exactly 200 (201/202/204 count as fatal in EDC).
Refusals are 4xx (fatal for EDC); 503 when EDC's Management API could not be asked (EDC retries).
The answers never name the grant: a caller learns only that the request was taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from provisioner.deps import EndpointSecretDep, ServicesDep
from provisioner.edc.wire import DataPlaneProvisionRequest, LegacyProvisionRequest
from provisioner.errors import ProvisionerError
from provisioner.grants.models import Flavour
from provisioner.metrics import Metrics
from workflow_contracts.text import CleanText

router = APIRouter(prefix="/edc", tags=["edc"])
T = TypeVar("T")


def _counted(metrics: Metrics, flavour: Flavour, kind: str, action: Callable[[], T]) -> T:
    try:
        result = action()
    except ProvisionerError as error:
        outcome = "refused" if error.status < 500 else "retry"
        metrics.requests.labels(flavour.value, kind, outcome).inc()
        raise
    metrics.requests.labels(flavour.value, kind, "accepted").inc()
    return result


@router.post("/provision")
def legacy_provisioning(
    body: LegacyProvisionRequest, services: ServicesDep, _: EndpointSecretDep
) -> JSONResponse:
    intake, metrics = services.intake, services.metrics
    if body.type == "deprovision":
        _counted(
            metrics,
            Flavour.LEGACY,
            "deprovision",
            lambda: intake.deprovision(Flavour.LEGACY, body.transferProcessId),
        )
        return JSONResponse({"status": "deprovisioning"}, status_code=200)
    _counted(
        metrics,
        Flavour.LEGACY,
        "provision",
        lambda: intake.provision(
            Flavour.LEGACY,
            transfer_process_id=body.transferProcessId,
            callback_address=body.callbackAddress,
            asset_id=body.assetId,
            resource_definition_id=body.resourceDefinitionId,
        ),
    )
    return JSONResponse({"status": "provisioning"}, status_code=200)


@router.post("/dataplane/provision")
def dataplane_provisioning(
    body: DataPlaneProvisionRequest,
    services: ServicesDep,
    _: EndpointSecretDep,
    asset: Annotated[CleanText | None, Query(description="the asset named in the URL")] = None,
) -> JSONResponse:
    intake, metrics = services.intake, services.metrics
    if body.type == "deprovision":
        _counted(
            metrics,
            Flavour.DATAPLANE,
            "deprovision",
            lambda: intake.deprovision(Flavour.DATAPLANE, body.flowId, body.provisionResourceId),
        )
        return JSONResponse({"status": "deprovisioning"}, status_code=200)
    _counted(
        metrics,
        Flavour.DATAPLANE,
        "provision",
        lambda: intake.provision(
            Flavour.DATAPLANE,
            transfer_process_id=body.flowId,
            callback_address=body.callbackAddress,
            asset_id=asset,
            provision_resource_id=body.provisionResourceId,
        ),
    )
    return JSONResponse({"status": "provisioning"}, status_code=200)
