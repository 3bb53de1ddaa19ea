"""End to end through the connectors' Management APIs and the consumer-facing URLs only."""

from __future__ import annotations

import io
import time
import zipfile

import httpx

from workflow_testkit.edc.dataspace import Dataspace
from workflow_testkit.workflow_api import execute, upload, wait_for_job

FINAL_PROVIDER = {"DEPROVISIONED", "TERMINATED"}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def run_job_with_input(access: dict[str, str]) -> None:
    """Upload an input, run a job on it, download its result."""
    with httpx.Client(
        base_url=access["endpoint"],
        headers={"Authorization": f"Bearer {access['token']}"},
        timeout=30,
        follow_redirects=True,
    ) as client:
        document = upload(client, b"hello dataspace\n", "document.txt")
        dataset = upload(client, _zip({"a.txt": b"alpha"}), "dataset.zip")
        job_id = execute(
            client,
            "input-dummy",
            {"document": {"href": document["href"]}, "dataset": {"href": dataset["href"]}},
        )
        assert wait_for_job(client, job_id)["status"] == "successful"
        results = client.get(f"/jobs/{job_id}/results").json()
        listing = client.get(results["listing"]["href"]).text
        assert "a.txt" in listing and "document" in listing


def test_full_cycle_catalog_to_nothing_left(dataspace: Dataspace) -> None:
    space = dataspace
    agreement = space.negotiate("input-dummy")
    requested = time.monotonic()
    transfer = space.transfer(agreement)
    access = space.workflow_access(transfer)
    run_job_with_input(access)
    first_job = time.monotonic() - requested
    print(f"\nEDC {space.version}: transfer request -> first successful job {first_job:.1f} s")

    flow = space.provider_transfer(transfer)
    grant = space.provisioner.admin_api.wait_for_grant(flow, {"active"})
    consumer_id = grant["consumerId"]
    assert consumer_id == "consumer"

    space.terminate(transfer)
    space.wait_state(space.provider, flow, FINAL_PROVIDER)
    space.provisioner.admin_api.wait_for_grant(flow, {"revoked"})
    space.provisioner.admin_api.assert_nothing_left(consumer_id, access["endpoint"])
    assert space.wait_state(space.consumer, transfer, {"TERMINATED", "DEPROVISIONED"})
