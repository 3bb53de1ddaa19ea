from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path
from typing import Any

import pytest

from data_sidecar import TransferPolicy, stage_in
from data_sidecar.errors import (
    ChecksumMismatchError,
    InputTooLargeError,
    StageInError,
    UnsafeArchiveError,
)
from tests.data_sidecar.builders import (
    make_tar,
    make_zip,
    manifest,
    tar_device,
    tar_link,
    zip_bomb,
    zip_with_symlink,
)
from tests.data_sidecar.storage_server import Answer, FakeStorage

MIB = 1024 * 1024


def staged(storage: FakeStorage, input_id: str, path: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("kind", "file")
    fields.setdefault("max_size", 100 * MIB)
    return {"id": input_id, "url": storage.url(path), **fields}


def inputs_listing(workspace: Path) -> list[str]:
    return sorted(path.name for path in (workspace / "inputs").iterdir())


def test_stage_in_downloads_files_extracts_archives_and_writes_literals(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    document = b"hello\n" * 1000
    storage.put_object("/in/document.txt", document)
    storage.put_object("/in/settings.env", b"GREETING=hi\n")
    storage.put_object("/in/dataset.bin", make_zip({"a.txt": b"A", "sub/b.txt": b"BB"}))
    storage.put_object(
        "/in/other.dat", make_tar([("x/y.txt", b"why"), ("top.txt", b"top")], compression="gz")
    )
    job = manifest(
        inputs=[
            staged(
                storage,
                "document",
                "/in/document.txt",
                size=len(document),
                sha256=hashlib.sha256(document).hexdigest().upper(),
            ),
            staged(storage, "settings", "/in/settings.env", kind="env-file"),
            staged(storage, "dataset", "/in/dataset.bin", kind="archive"),
            staged(storage, "other", "/in/other.dat", kind="archive"),
        ],
        literals={"duration": 2.5, "fail": False, "message": "héllo"},
    )

    stage_in(job, workspace, policy=policy)

    inputs = workspace / "inputs"
    assert inputs_listing(workspace) == ["dataset", "document", "other", "settings"]
    assert (inputs / "document").read_bytes() == document
    assert (inputs / "settings").read_bytes() == b"GREETING=hi\n"
    assert (inputs / "dataset" / "a.txt").read_bytes() == b"A"
    assert (inputs / "dataset" / "sub" / "b.txt").read_bytes() == b"BB"
    assert (inputs / "other" / "x" / "y.txt").read_bytes() == b"why"
    assert (inputs / "other" / "top.txt").read_bytes() == b"top"
    assert json.loads((workspace / "inputs.json").read_text(encoding="utf-8")) == {
        "duration": 2.5,
        "fail": False,
        "message": "héllo",
    }
    assert (workspace / "outputs").is_dir()
    assert sorted(p.name for p in workspace.iterdir()) == ["inputs", "inputs.json", "outputs"]
    assert all(seen.query.startswith("X-Signature=") for seen in storage.requests)


def test_stage_in_without_inputs_still_prepares_the_workspace(
    workspace: Path, policy: TransferPolicy
) -> None:
    stage_in(manifest(), workspace, policy=policy)
    assert inputs_listing(workspace) == []
    assert json.loads((workspace / "inputs.json").read_text()) == {}
    assert (workspace / "outputs").is_dir()


def test_announced_length_over_max_size_is_rejected_before_reading(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/big", bytes(2 * MIB))
    job = manifest(inputs=[staged(storage, "big", "/big", max_size=MIB)])
    with pytest.raises(InputTooLargeError, match="announces 2097152 bytes"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == []
    assert storage.count("GET", "/big") == 1


def test_body_without_length_is_cut_off_at_max_size(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/stream", bytes(3 * MIB), chunked=True)
    job = manifest(inputs=[staged(storage, "stream", "/stream", max_size=MIB)])
    with pytest.raises(InputTooLargeError, match=f"limit of {MIB} bytes"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == []


def test_body_longer_than_the_expected_size_is_rejected(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/longer", b"x" * 5000, chunked=True)
    job = manifest(inputs=[staged(storage, "doc", "/longer", size=100)])
    with pytest.raises(ChecksumMismatchError, match="more than the expected 100 bytes"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == []


def test_body_shorter_than_the_expected_size_is_rejected(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/short", b"x" * 10, chunked=True)
    job = manifest(inputs=[staged(storage, "doc", "/short", size=11)])
    with pytest.raises(ChecksumMismatchError, match="got 10 bytes, expected 11"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == []


def test_sha256_mismatch_is_rejected(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/doc", b"actual content")
    wrong = hashlib.sha256(b"other content").hexdigest()
    job = manifest(inputs=[staged(storage, "doc", "/doc", sha256=wrong)])
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == []


UNSAFE_ARCHIVES = {
    "zip slip": (make_zip({"ok.txt": b"1", "../evil.txt": b"2"}), "points outside"),
    "zip absolute path": (make_zip({"/tmp/evil.txt": b"2"}), "absolute path"),
    "zip symlink": (zip_with_symlink("link", "/etc/passwd"), "symbolic link"),
    "tar slip": (make_tar([("ok.txt", b"1"), ("a/../../evil.txt", b"2")]), "points outside"),
    "tar absolute path": (make_tar([("/etc/evil", b"2")]), "absolute path"),
    "tar symlink": (make_tar([tar_link("link", "/etc/passwd", tarfile.SYMTYPE)]), "is a link"),
    "tar hardlink": (
        make_tar([("ok.txt", b"1"), tar_link("hard", "/etc/passwd", tarfile.LNKTYPE)]),
        "is a link",
    ),
    "tar device": (make_tar([tar_device("null")]), "not a file or directory"),
    "zip bomb": (zip_bomb(4 * MIB), "more than 1048576 bytes"),
    "zip bomb with lying headers": (zip_bomb(4 * MIB, declared=100), "is corrupt"),
    "tar.gz bomb": (make_tar([("zeros", bytes(4 * MIB))]), "more than 1048576 bytes"),
    "zip with too many files": (
        make_zip({f"f{number}.txt": b"x" for number in range(11)}),
        "more than 10 entries",
    ),
    "tar with too many files": (
        make_tar([(f"f{number}.txt", b"x") for number in range(11)]),
        "more than 10 entries",
    ),
    "not an archive": (b"plain text" * 100, "neither a zip nor a tar"),
}


@pytest.mark.parametrize(("data", "reason"), UNSAFE_ARCHIVES.values(), ids=UNSAFE_ARCHIVES.keys())
def test_unsafe_archive_is_rejected_and_nothing_is_left(
    storage: FakeStorage,
    workspace: Path,
    policy: TransferPolicy,
    tmp_path: Path,
    data: bytes,
    reason: str,
) -> None:
    storage.put_object("/dataset", data)
    job = manifest(
        inputs=[staged(storage, "dataset", "/dataset", kind="archive")],
        archive_limits={"max_total_size": MIB, "max_files": 10},
    )
    with pytest.raises(UnsafeArchiveError, match=reason) as caught:
        stage_in(job, workspace, policy=policy)
    assert caught.value.input_id == "dataset"
    assert inputs_listing(workspace) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workspace"]
    assert not Path("/tmp/evil.txt").exists()


def test_archive_at_the_limits_is_accepted(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    entries = {f"f{number}.bin": bytes(100) for number in range(10)}
    storage.put_object("/dataset", make_zip(entries))
    job = manifest(
        inputs=[staged(storage, "dataset", "/dataset", kind="archive")],
        archive_limits={"max_total_size": 1000, "max_files": 10},
    )
    stage_in(job, workspace, policy=policy)
    assert len(list((workspace / "inputs" / "dataset").iterdir())) == 10


def test_failure_of_a_later_input_keeps_earlier_complete_inputs(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/first", b"first")
    job = manifest(
        inputs=[staged(storage, "first", "/first"), staged(storage, "second", "/absent")]
    )
    with pytest.raises(StageInError, match="'second'"):
        stage_in(job, workspace, policy=policy)
    assert inputs_listing(workspace) == ["first"]


def test_503_answers_are_retried_until_success(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/doc", b"content")
    storage.script("/doc", Answer(status=503), Answer(status=429))
    stage_in(manifest(inputs=[staged(storage, "doc", "/doc")]), workspace, policy=policy)
    assert (workspace / "inputs" / "doc").read_bytes() == b"content"
    assert storage.count("GET", "/doc") == 3


def test_a_retry_after_a_broken_download_restarts_the_file(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    body = bytes(range(256)) * 8192
    storage.put_object("/doc", body)
    storage.script("/doc", Answer(truncate=True), Answer(drop=True))
    digest = hashlib.sha256(body).hexdigest()
    job = manifest(inputs=[staged(storage, "doc", "/doc", size=len(body), sha256=digest)])
    stage_in(job, workspace, policy=policy)
    assert (workspace / "inputs" / "doc").read_bytes() == body
    assert storage.count("GET", "/doc") == 3


def test_a_server_slower_than_the_read_timeout_is_retried(
    storage: FakeStorage, workspace: Path
) -> None:
    storage.put_object("/doc", b"late")
    storage.script("/doc", Answer(delay=1.0))
    policy = TransferPolicy(attempts=2, initial_wait=0.01, max_wait=0.01, read_timeout=0.2)
    stage_in(manifest(inputs=[staged(storage, "doc", "/doc")]), workspace, policy=policy)
    assert (workspace / "inputs" / "doc").read_bytes() == b"late"
    assert storage.count("GET", "/doc") == 2


def test_404_is_final_without_retries(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    job = manifest(inputs=[staged(storage, "doc", "/missing")])
    with pytest.raises(StageInError, match="answered HTTP 404") as caught:
        stage_in(job, workspace, policy=policy)
    assert storage.count("GET", "/missing") == 1
    assert "s3cr3t" not in str(caught.value)
    assert inputs_listing(workspace) == []


def test_persistent_503_gives_up_after_the_configured_attempts(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    storage.always["/doc"] = Answer(status=503)
    caplog.set_level(logging.DEBUG, logger="data_sidecar")
    with pytest.raises(StageInError, match="answered HTTP 503") as caught:
        stage_in(manifest(inputs=[staged(storage, "doc", "/doc")]), workspace, policy=policy)
    assert storage.count("GET", "/doc") == policy.attempts
    assert "s3cr3t" not in str(caught.value)
    sidecar_lines = [r.getMessage() for r in caplog.records if r.name.startswith("data_sidecar")]
    assert any("retrying" in line for line in sidecar_lines)
    assert not any("s3cr3t" in line for line in sidecar_lines)


def test_unreachable_server_fails_after_bounded_attempts(
    workspace: Path, policy: TransferPolicy
) -> None:
    job = manifest(
        inputs=[
            {"id": "doc", "kind": "file", "url": "http://127.0.0.1:9/doc?sig=x", "max_size": 10}
        ]
    )
    with pytest.raises(StageInError, match="after 3 attempts: ConnectError"):
        stage_in(job, workspace, policy=policy)


@pytest.mark.parametrize(
    ("input_id", "kind", "reason"),
    [("../escape", "file", "not a valid input id"), ("value", "literal", "literals")],
)
def test_bad_manifest_entries_are_refused_without_a_request(
    storage: FakeStorage,
    workspace: Path,
    policy: TransferPolicy,
    input_id: str,
    kind: str,
    reason: str,
) -> None:
    storage.put_object("/doc", b"x")
    job = manifest(inputs=[staged(storage, input_id, "/doc", kind=kind)])
    with pytest.raises(StageInError, match=reason):
        stage_in(job, workspace, policy=policy)
    assert storage.requests == []
    assert inputs_listing(workspace) == []
