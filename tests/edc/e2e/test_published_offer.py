"""The offering `provisioner publish` made, bought as a real consumer would: the provider's EDC
calls the provisioner (0.18.0: the data plane POSTs to the published `baseUrl`; 0.15.1: legacy
provision-http for the `WorkflowApi` address), the provisioner verifies the transfer through the
real Management API, deploys the consumer's workflow-api and calls back; the consumer's EDR leads
to that workflow-api (0.18.0: it is its address; 0.15.1: through the provider's public proxy),
with which the consumer runs a job."""

from __future__ import annotations

import httpx

from tests.edc.e2e.lifecycle import Running, assert_ended
from workflow_testkit.edc.dataspace import Dataspace
from workflow_testkit.workflow_api import execute, wait_for_job


def test_published_asset_is_provisioned_and_the_consumer_runs_a_job_with_its_edr(
    dataspace: Dataspace,
) -> None:
    space = dataspace
    transfer = space.transfer(space.negotiate("echo"))
    flow = space.provider_transfer(transfer)
    grant = space.provisioner.admin_api.wait_for_grant(flow, {"active", "failed"}, 90)
    assert grant["state"] == "active", grant
    assert (grant["consumerId"], grant["assetId"]) == ("consumer", "echo")
    assert space.wait_state(space.provider, flow, {"STARTED"}) == "STARTED"

    access = space.workflow_access(transfer)  # from the consumer's EDR
    endpoint, token = access["endpoint"], access["token"]
    assert endpoint and token, access
    with httpx.Client(
        base_url=endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        job_id = execute(api, "echo", {"message": "bought over DSP"})
        assert wait_for_job(api, job_id)["status"] == "successful"
        result = api.get(f"/jobs/{job_id}/results/echo", follow_redirects=True)
        assert result.text == "bought over DSP"
    space.terminate(transfer)
    assert_ended(space, Running(transfer, flow, grant["consumerId"], access))
