"""The sandbox's pure parts: quantities, the bwrap command line, start-up refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from workflow_api.execution.local.limits import cpu_millicores, memory_bytes
from workflow_api.execution.local.workers import WorkerLauncher
from workflow_common.sandbox import BubblewrapPolicy, SandboxUnavailable
from workflow_contracts.asset import LocalNetwork, WorkflowAsset
from workflow_testkit.sandbox import TEST_WORKER_UID


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("512M", 512_000_000),
        ("1000", 1000),
        ("1.5Gi", 3 << 29),
    ],
)
def test_memory_quantities(quantity: str, expected: int) -> None:
    assert memory_bytes(quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"), [("100m", 100), ("1", 1000), ("0.5", 500), ("2.25", 2250)]
)
def test_cpu_quantities(quantity: str, expected: int) -> None:
    assert cpu_millicores(quantity) == expected


@pytest.mark.parametrize("quantity", ["", "lots", "-1Gi", "0", "1Pi", "64 MB"])
def test_junk_memory_is_refused_naming_it(quantity: str) -> None:
    with pytest.raises(ValueError, match="memory"):
        memory_bytes(quantity)


def _asset(**local: object) -> WorkflowAsset:
    return WorkflowAsset.model_validate(
        {
            "id": "a",
            "title": "A",
            "execution": {"image": "x", "resources": {"cpu": "lots"}},
            "local": {"command": ["true"], **local},
        }
    )


def test_asset_network_is_none_by_default_and_only_none_or_egress() -> None:
    assert _asset().local is not None and _asset().local.network is LocalNetwork.NONE
    assert _asset(network="egress").local.network is LocalNetwork.EGRESS  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="network"):
        _asset(network="host")


def test_unusable_resources_are_a_refusal_that_says_why() -> None:
    launcher = WorkerLauncher(_policy(), max_processes=8)
    refusal = launcher.refusal(_asset())
    assert refusal is not None and "cpu 'lots'" in refusal


def _policy(
    worker_uid: int | None = 4242, setpriv: str | None = "/usr/bin/setpriv"
) -> BubblewrapPolicy:
    return BubblewrapPolicy(
        bwrap="/usr/bin/bwrap",
        setpriv=setpriv,
        worker_uid=worker_uid,
        read_only=(Path("/opt/runtime"), Path("/srv/assets")),
    )


def _pairs(arguments: list[str], option: str) -> list[str]:
    return [arguments[i + 1] for i, value in enumerate(arguments) if value == option]


def test_command_line_shows_only_what_it_lists_and_drops_to_the_worker_uid() -> None:
    workspace = Path("/data/consumer/workspaces/job-1")
    arguments = _policy().arguments(
        ["run", "--fast"], workspace=workspace, network=False, tmp_size=64
    )
    bwrap_part = arguments[: arguments.index("--")]
    for flag in ("--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session"):
        assert flag in bwrap_part
    assert "--unshare-user" not in bwrap_part  # as root, a real uid switch instead
    assert _pairs(bwrap_part, "--ro-bind")[:1] == ["/usr"]
    binds = [arguments[i + 2] for i, value in enumerate(arguments) if value == "--ro-bind"]
    assert set(binds) - {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} == {
        "/opt/runtime",
        "/srv/assets",
    }
    assert _pairs(bwrap_part, "--bind") == [str(workspace)]
    assert _pairs(bwrap_part, "--chdir") == [str(workspace)]
    assert "/data" in _pairs(bwrap_part, "--dir")  # an empty directory on the way, nothing more
    assert bwrap_part[-4:] == ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    inner = arguments[arguments.index("--") + 1 :]
    assert inner[:6] == ["/usr/bin/setpriv", "--reuid", "4242", "--regid", "4242", "--clear-groups"]
    assert inner[-3:] == ["--", "run", "--fast"]


def test_egress_keeps_the_network_and_no_uid_means_no_switch() -> None:
    arguments = _policy(worker_uid=None, setpriv=None).arguments(
        ["run"], workspace=Path("/w"), network=True, tmp_size=64
    )
    assert "--unshare-net" not in arguments
    assert "--cap-add" not in arguments
    assert arguments[-2:] == ["--", "run"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid rule is for an API running as root")
def test_an_api_running_as_root_needs_a_worker_uid(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="WORKFLOW_API_SANDBOX_UID"):
        BubblewrapPolicy.prepare(
            data_dir=tmp_path / "data", assets_dir=tmp_path, extra_read_only=(), worker_uid=None
        )


def test_a_read_only_path_holding_the_data_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="data directory"):
        BubblewrapPolicy.prepare(
            data_dir=tmp_path / "data",
            assets_dir=tmp_path / "assets",
            extra_read_only=[tmp_path],
            worker_uid=TEST_WORKER_UID,
        )


def test_without_bwrap_the_sandbox_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        BubblewrapPolicy.prepare(
            data_dir=tmp_path / "data", assets_dir=tmp_path, extra_read_only=(), worker_uid=None
        )
