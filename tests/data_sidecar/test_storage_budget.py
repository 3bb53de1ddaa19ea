"""The storage quota seen from the sidecar: extraction bounds, push-out admission, 413 answers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from data_sidecar import TransferPolicy, run_push_out, stage_in
from data_sidecar.archives import extraction_bound, free_disk_bytes
from data_sidecar.errors import UnsafeArchiveError
from data_sidecar.push_out import LOG_TARGET
from tests.data_sidecar.builders import make_tar, make_zip, manifest
from tests.data_sidecar.storage_server import Answer, FakeStorage
from workflow_contracts.manifest import ArchiveLimits, StorageBudget, format_size

MIB = 1024**2
GIB = 1024**3


def statvfs_reading(*, available_blocks: int, fragment_size: int = 4096) -> os.statvfs_result:
    """A `statvfs` reading as the kernel reports it (bsize, frsize, blocks, bfree, bavail, ...)."""
    blocks = (10**9, available_blocks + 50, available_blocks)
    return os.statvfs_result((4096, fragment_size, *blocks, 10**6, 10**6, 10**6, 0, 255))


# --- pure functions ---------------------------------------------------------------------------


def test_format_size_uses_binary_units() -> None:
    assert format_size(512) == "512 bytes"
    assert format_size(40 * MIB) == "40 MiB"
    assert format_size(int(1.5 * GIB)) == "1.5 GiB"
    assert format_size(3 * 1024 * GIB) == "3072 GiB"


def test_free_disk_is_the_unprivileged_part_of_a_statvfs_reading() -> None:
    reading = statvfs_reading(available_blocks=100, fragment_size=4096)
    assert free_disk_bytes(reading) == 100 * 4096  # f_bavail, not f_bfree (root's reserve)


@pytest.mark.parametrize(
    ("storage", "disk_free", "already", "size", "reason"),
    [
        (None, 50 * GIB, 0, 10 * GIB, "the per-job archive limit"),
        (StorageBudget(free_bytes=40 * MIB, quota_bytes=GIB), 50 * GIB, 0, 40 * MIB, "quota"),
        (
            StorageBudget(free_bytes=40 * MIB, quota_bytes=GIB),
            50 * GIB,
            30 * MIB,
            10 * MIB,
            "1 GiB",
        ),
        (StorageBudget(free_bytes=40 * MIB, quota_bytes=GIB), 8 * MIB, 0, 8 * MIB, "disk space"),
        (StorageBudget(free_bytes=40 * MIB, quota_bytes=GIB), 50 * GIB, 50 * MIB, 0, "quota"),
    ],
)
def test_extraction_bound_is_the_smallest_of_limit_quota_and_disk(
    storage: StorageBudget | None, disk_free: int, already: int, size: int, reason: str
) -> None:
    bound = extraction_bound(ArchiveLimits(), storage, disk_free, already)
    assert bound.size == size
    assert reason in bound.reason


def test_free_disk_bound_from_an_injected_statvfs_reading_refuses_an_archive(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/dataset", make_zip({"big.bin": bytes(2 * MIB)}))
    job = manifest(
        inputs=[_archive(storage)],
        storage=StorageBudget(free_bytes=GIB, quota_bytes=GIB).model_dump(),
    )
    reading = statvfs_reading(available_blocks=256)  # 1 MiB free

    with pytest.raises(UnsafeArchiveError, match="free disk space") as caught:
        stage_in(job, workspace, policy=policy, disk_free=lambda _path: free_disk_bytes(reading))

    assert caught.value.input_id == "dataset"
    assert "more than 1048576 bytes (1 MiB)" in str(caught.value)
    assert sorted(p.name for p in (workspace / "inputs").iterdir()) == []


# --- stage-in ---------------------------------------------------------------------------------


def _archive(storage: FakeStorage, input_id: str = "dataset", path: str = "/dataset") -> Any:
    return {"id": input_id, "kind": "archive", "url": storage.url(path), "max_size": 100 * MIB}


def test_archive_expanding_beyond_the_free_quota_is_refused_naming_the_input(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/dataset", make_tar([("zeros.bin", bytes(3 * MIB))]))  # a few KiB packed
    job = manifest(
        inputs=[_archive(storage)],
        storage=StorageBudget(free_bytes=2 * MIB, quota_bytes=8 * MIB).model_dump(),
    )
    with pytest.raises(UnsafeArchiveError) as caught:
        stage_in(job, workspace, policy=policy)
    assert caught.value.input_id == "dataset"
    assert "free part of the 8 MiB storage quota" in str(caught.value)
    assert not (workspace / "inputs" / "dataset").exists()


def test_the_quota_bound_counts_what_earlier_archives_expanded_to(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/first", make_zip({"a.bin": bytes(MIB)}))
    storage.put_object("/second", make_zip({"b.bin": bytes(MIB)}))
    budget = StorageBudget(free_bytes=MIB + MIB // 2, quota_bytes=8 * MIB)
    job = manifest(
        inputs=[_archive(storage, "first", "/first"), _archive(storage, "second", "/second")],
        storage=budget.model_dump(),
    )
    with pytest.raises(UnsafeArchiveError, match="quota") as caught:
        stage_in(job, workspace, policy=policy)
    assert caught.value.input_id == "second"
    assert (workspace / "inputs" / "first" / "a.bin").stat().st_size == MIB


def test_archive_within_quota_and_disk_is_extracted(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/dataset", make_zip({"a.bin": bytes(MIB)}))
    job = manifest(
        inputs=[_archive(storage)],
        storage=StorageBudget(free_bytes=MIB, quota_bytes=8 * MIB).model_dump(),
    )
    stage_in(job, workspace, policy=policy)
    assert (workspace / "inputs" / "dataset" / "a.bin").stat().st_size == MIB


# --- push-out ---------------------------------------------------------------------------------


def _outputs(workspace: Path, sizes: dict[str, int]) -> None:
    directory = workspace / "outputs"
    directory.mkdir()
    for name, size in sizes.items():
        (directory / name).write_bytes(os.urandom(size))


def _push_manifest(server: FakeStorage, names: list[str], **fields: Any) -> Any:
    return manifest(
        outputs=[{"id": n, "kind": "file", "url": server.url(f"/out/{n}")} for n in names],
        log_url=server.url("/log"),
        report_url=server.url("/report"),
        **fields,
    )


def test_outputs_beyond_the_manifest_budget_are_refused_before_any_upload(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, tmp_path: Path
) -> None:
    _outputs(workspace, {"a": 2 * MIB, "b": MIB})
    log_file = tmp_path / "job.log"
    log_file.write_bytes(b"worker said hello\n")
    budget = StorageBudget(free_bytes=2 * MIB, quota_bytes=GIB)
    job = _push_manifest(storage, ["a", "b"], storage=budget.model_dump())

    outcome = run_push_out(job, workspace, log_file, policy=policy)

    assert outcome.report.refused == "outputs need 3 MiB but only 2 MiB of the 1 GiB quota is free"
    assert outcome.report.pushed == {}
    assert not outcome.succeeded
    assert "/out/a" not in storage.objects and "/out/b" not in storage.objects
    assert storage.objects["/log"] == b"worker said hello\n"  # the log fits in what is left
    stored_report = json.loads(storage.objects["/report"])
    assert stored_report["refused"] == outcome.report.refused


def test_an_admit_hook_decides_instead_of_the_manifest_and_sees_every_size(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, tmp_path: Path
) -> None:
    _outputs(workspace, {"a": 1000, "b": 10})
    log_file = tmp_path / "job.log"
    log_file.write_bytes(b"x" * 7)
    asked: list[dict[str, int]] = []

    def admit(sizes: Any) -> str | None:
        asked.append(dict(sizes))
        return (
            "the log needs 7 bytes but only 0 bytes of the 1 GiB quota is free"
            if (LOG_TARGET in sizes)
            else None
        )

    job = _push_manifest(storage, ["a", "b"], storage={"free_bytes": 0, "quota_bytes": GIB})
    outcome = run_push_out(job, workspace, log_file, policy=policy, admit=admit)

    assert asked == [{"a": 1000, "b": 10}, {LOG_TARGET: 7}]
    assert set(outcome.report.pushed) == {"a", "b"}
    assert outcome.report.log_pushed is False
    assert "/log" not in storage.objects
    assert any("the log needs 7 bytes" in error for error in outcome.errors)


def test_a_413_from_the_storage_stops_the_outputs(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    """Here an S3-like answer without a problem body; the workflow-api's own reason is read in
    tests/workflow_api/test_quota.py."""
    _outputs(workspace, {"a": 100, "b": 100, "c": 100})
    storage.script("/out/b", Answer(status=413))
    outcome = run_push_out(_push_manifest(storage, ["a", "b", "c"]), workspace, None, policy=policy)

    assert outcome.report.refused == "the storage refused 100 bytes as too large (HTTP 413)"
    assert set(outcome.report.pushed) == {"a"}
    assert storage.count("PUT", "/out/b") == 1, "a 413 is not retried"
    assert storage.count("PUT", "/out/c") == 0, "nothing is sent after a refusal"
