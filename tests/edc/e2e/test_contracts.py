"""Short contracts (seconds) end by the provisioner's own timer and by EDC's policy monitor, in
both orders; EDC's flow reaches its final state either way."""

from __future__ import annotations

from tests.edc.e2e.conftest import SHORT_ASSET, SHORT_VALIDITY_SECONDS
from tests.edc.e2e.lifecycle import assert_ended, run_echo, start_echo_transfer
from workflow_testkit.edc.dataspace import Dataspace


def test_provisioner_timer_first_then_edc_policy_monitor(dataspace: Dataspace) -> None:
    space = dataspace
    running = start_echo_transfer(space, SHORT_ASSET)
    run_echo(running.access, asset_id=SHORT_ASSET)

    expiry = SHORT_VALIDITY_SECONDS + 10  # from before the signing: an upper bound
    grant = space.provisioner.admin_api.wait_for_grant(
        running.flow, {"revoking", "revoked"}, expiry
    )
    assert grant["revokeReason"] == "the contract expired"
    assert space.state(space.provider, running.flow) == "STARTED", "EDC's monitor came first"

    assert_ended(space, running)


def test_edc_policy_monitor_first_then_provisioner_timer(dataspace: Dataspace) -> None:
    """The provisioner is down when the contract ends: EDC's monitor terminates the transfer and
    keeps asking to deprovision; the provisioner comes back and converges."""
    space = dataspace
    provisioner = space.provisioner
    running = start_echo_transfer(space, SHORT_ASSET)
    run_echo(running.access, asset_id=SHORT_ASSET)
    provisioner.stop()
    try:
        space.wait_state(space.provider, running.flow, {"TERMINATED", "DEPROVISIONING"}, 30)
    finally:
        provisioner.start()
    assert_ended(space, running)
