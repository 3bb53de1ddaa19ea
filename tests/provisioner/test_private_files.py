"""Everything the services write is private: files 0600, directories 0700 (real processes).

The real provisioner (`provisioner serve`) deploys a consumer whose real workflow-api (`workflow-api
serve`) stores an upload and runs a job; then every file and directory both wrote is stat-ed.
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.provisioner.test_crash_recovery import EDC, ProvisionerProcess
from workflow_common.private_files import private_dir, private_file, workspace_dir
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.provisioner import (
    ENDPOINT_SECRET,
    consumer_directories,
    remove_leftover_deployments,
)
from workflow_testkit.workflow_api import execute, upload, wait_for_job

# Written by this test, not by the services: the provisioner's stdout and stderr.
TEST_FILES = {"provisioner.log"}


@pytest.fixture
def provisioner(tmp_path: Path, edc_standin: EdcStandIn) -> Iterator[ProvisionerProcess]:
    data_dir = tmp_path / "provisioner"
    data_dir.mkdir(mode=0o755)  # wider than it should be: the provisioner tightens it
    running = ProvisionerProcess(data_dir, edc_standin.management_url)
    running.start()
    yield running
    running.stop()
    remove_leftover_deployments(data_dir, f"sqlite:///{data_dir / 'provisioner.db'}")


def _too_open(root: Path) -> list[str]:
    """Every path under `root` whose mode lets anyone but its owner in."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.name in TEST_FILES or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        if mode != expected:
            found.append(f"{path.relative_to(root)}: {mode:o}")
    return found


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_databases_logs_uploads_and_stored_objects_are_private(
    provisioner: ProvisionerProcess, edc_standin: EdcStandIn
) -> None:
    process = edc_standin.world.new_transfer(asset_id="input-dummy", consumer_id="frank")
    edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{provisioner.base_url}/edc/provision?secret={ENDPOINT_SECRET}"
    )
    callback = edc_standin.driver.wait_for_callback(process.id, "provision", timeout=60)
    secret = callback.body["contentDataAddress"]["properties"][f"{EDC}authCode"].removeprefix(
        "Bearer "
    )
    credentials = httpx.get(
        f"{provisioner.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
    ).json()
    with httpx.Client(
        base_url=credentials["endpoint"],
        headers={"Authorization": f"Bearer {credentials['token']}"},
        timeout=60,
    ) as client:
        document = upload(client, b"hello\n", "d.txt")
        dataset = upload(client, _zip({"a/b.txt": b"1"}), "d.zip")
        job_id = execute(
            client,
            "input-dummy",
            {
                "document": {"href": document["href"]},
                "dataset": {"href": dataset["href"]},
                "settings": "GREETING=hi\n",
            },
        )
        assert wait_for_job(client, job_id)["status"] == "successful"

    (consumer,) = consumer_directories(provisioner.data_dir)
    written = {p.name for p in [*provisioner.data_dir.iterdir(), *consumer.rglob("*")]}
    # What we meant to check is there: databases, keys, pid file, logs, uploads, stored objects.
    expected = {
        "provisioner.db", "provisioner.db-wal", "credentials.key", "signing-key.pem",
        "workflow-api.pid", "workflow-api.log", "workflow-api.db", "workflow-api.db-wal",
        "storage", "incoming", "workspaces", "log.txt",
    }  # fmt: skip
    assert expected <= written, expected - written
    assert _too_open(provisioner.data_dir) == []


def test_the_helpers_create_private_paths_and_tighten_wide_ones(tmp_path: Path) -> None:
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    assert stat.S_IMODE(private_dir(wide / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE((wide / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(private_dir(wide).stat().st_mode) == 0o700
    loose = wide / "loose.db"
    loose.write_bytes(b"x")
    loose.chmod(0o644)
    assert stat.S_IMODE(private_file(loose).stat().st_mode) == 0o600
    assert loose.read_bytes() == b"x"  # tightened, not truncated
    workspace = workspace_dir(wide / "workspaces" / "job")
    assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
