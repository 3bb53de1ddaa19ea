"""A job's final count: where nothing could check while the job stored (S3 written from a job
container), the objects are counted when it ends and outputs that do not fit are deleted.

A real ledger (SQLite) and the filesystem store; objects are written with `put_file`, past the
signed-PUT route, the way a job container writes to S3 through its presigned uploads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from workflow_api.db import Job, JobStatus, make_engine
from workflow_api.execution.job_storage import JobStorage
from workflow_api.quota import QuotaExceededError, QuotaLedger
from workflow_api.storage import base as keys
from workflow_api.storage.filesystem import FilesystemStore
from workflow_common.clock import utcnow
from workflow_contracts.asset import WorkflowAsset

MiB = 1024**2
ASSET = WorkflowAsset.model_validate(
    {
        "id": "writer",
        "title": "W",
        "execution": {"image": "x"},
        "outputs": [{"id": "a"}, {"id": "b"}],
    }
)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[QuotaLedger, FilesystemStore, JobStorage]:
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    store = FilesystemStore(tmp_path / "storage", b"k" * 32, "http://127.0.0.1:9")
    store.prepare()
    ledger = QuotaLedger(engine, 8 * MiB)
    return ledger, store, JobStorage(ledger, store)


def _write(store: FilesystemStore, tmp_path: Path, key: str, size: int) -> None:
    source = tmp_path / f"source-{os.urandom(4).hex()}"
    source.write_bytes(os.urandom(size))
    store.put_file(key, source)


def test_outputs_that_each_fit_their_cap_but_not_together_are_deleted_at_the_end(
    parts: tuple[QuotaLedger, FilesystemStore, JobStorage], tmp_path: Path
) -> None:
    ledger, store, storage = parts
    _write(store, tmp_path, keys.upload_key("u1"), 0)  # not counted: no upload row
    budget = storage.budget()
    assert budget.free_bytes == 8 * MiB
    # Two outputs of 5 MiB: each within the per-object cap (8 MiB free), 10 MiB together.
    for output_id in ("a", "b"):
        _write(store, tmp_path, keys.output_key("j1", output_id), 5 * MiB)
    _write(store, tmp_path, keys.log_key("j1"), 1000)

    settled = storage.settle("j1", ASSET, refused=None)

    assert settled.refusal == "outputs need 10 MiB but only 8 MiB of the 8 MiB quota is free"
    assert store.size(keys.output_key("j1", "a")) is None
    assert store.size(keys.output_key("j1", "b")) is None
    assert store.size(keys.log_key("j1")) == 1000
    assert settled.stored_bytes == 1000
    assert ledger.usage().stored == 1000 <= ledger.quota


def test_outputs_within_the_quota_are_counted_at_the_end_and_forgotten_with_the_job(
    parts: tuple[QuotaLedger, FilesystemStore, JobStorage], tmp_path: Path
) -> None:
    ledger, store, storage = parts
    _write(store, tmp_path, keys.output_key("j1", "a"), 3 * MiB)
    _write(store, tmp_path, keys.log_key("j1"), 10)

    settled = storage.settle("j1", ASSET, refused=None)

    assert settled.refusal is None
    assert settled.stored_bytes == ledger.usage().stored == 3 * MiB + 10
    with pytest.raises(QuotaExceededError, match="the upload needs 6 MiB but only 5 MiB"):
        ledger.reserve(6 * MiB)
    storage.forget("j1")
    assert ledger.usage().stored == 0


def test_a_refused_jobs_outputs_are_deleted_even_when_they_would_fit(
    parts: tuple[QuotaLedger, FilesystemStore, JobStorage], tmp_path: Path
) -> None:
    ledger, store, storage = parts
    _write(store, tmp_path, keys.output_key("j1", "a"), 100)
    settled = storage.settle("j1", ASSET, refused="outputs need 9 MiB but only 8 MiB ...")
    assert settled.refusal is not None
    assert store.size(keys.output_key("j1", "a")) is None
    assert ledger.usage().stored == 0


def test_holds_are_all_or_nothing_and_reused_by_the_same_key(
    parts: tuple[QuotaLedger, FilesystemStore, JobStorage],
) -> None:
    ledger, _store, storage = parts
    admit = storage.admission("j1")
    assert admit({"a": 6 * MiB, "b": 3 * MiB}) == (
        "outputs need 9 MiB but only 8 MiB of the 8 MiB quota is free"
    )
    assert ledger.usage().reserved == 0, "a refused admission holds nothing"
    assert admit({"a": 6 * MiB}) is None
    # The route, receiving the same key, finds the room already held: nothing counted twice.
    ledger.hold({keys.output_key("j1", "a"): 6 * MiB}, "j1", "output 'a'")
    assert ledger.usage().reserved == 6 * MiB
    ledger.record(keys.output_key("j1", "a"), 6 * MiB, "j1")
    assert (ledger.usage().stored, ledger.usage().reserved) == (6 * MiB, 0)


def test_jobs_counted_before_the_ledger_had_rows_are_adopted_once(
    parts: tuple[QuotaLedger, FilesystemStore, JobStorage],
) -> None:
    ledger, _store, storage = parts
    now = utcnow()
    with Session(ledger._engine) as session:  # a database written by an earlier version
        session.add(
            Job(
                id="old",
                process_id="p",
                status=JobStatus.SUCCESSFUL,
                created=now,
                updated=now,
                launch={},
                stored_bytes=2 * MiB,
            )
        )
        session.commit()

    assert ledger.adopt_earlier_counts() == 1
    assert ledger.adopt_earlier_counts() == 0
    assert ledger.usage().stored == 2 * MiB
    storage.forget("old")
    assert ledger.usage().stored == 0
