"""A real EDC 0.15.1 provider and consumer with the real provisioner, whose legacy callback (to the
provider's Management API context) carries a key EDC does not know: the published asset is bought
over DSP, EDC answers the callback 401, the grant fails at once and the provisioner ends the
transfer in EDC, which would otherwise wait in PROVISIONING_REQUESTED forever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow_testkit.edc.dataspace import Dataspace, open_dataspace
from workflow_testkit.edc.runtimes import require_edc_runtime

VERSION = "0.15.1"


@pytest.fixture
def refused_key_world(tmp_path: Path) -> Iterator[Dataspace]:
    require_edc_runtime(VERSION)
    wrong_key = {"PROVISIONER_EDC_CALLBACK_API_KEY": "not-the-key-of-this-edc"}
    with open_dataspace(VERSION, tmp_path, environment=wrong_key) as space:
        yield space


def test_a_refused_callback_key_fails_the_grant_and_ends_the_transfer_in_edc(
    refused_key_world: Dataspace,
) -> None:
    space = refused_key_world
    transfer = space.transfer(space.negotiate("echo"))
    flow = space.provider_transfer(transfer)
    grant = space.provisioner.admin_api.wait_for_grant(flow, {"failed"}, 60)
    assert "EDC refused the callback's credentials (401" in grant["lastError"]
    space.wait_state(space.provider, flow, {"TERMINATED", "DEPROVISIONED"})
    with space.provider.management() as client:
        ended = client.get(f"/v3/transferprocesses/{flow}").json()
    assert "the provisioner gave up" in ended.get("errorDetail", ""), ended
    space.provisioner.admin_api.assert_nothing_left("consumer")
