"""The filesystem store on a real directory: objects, prefixes, confinement and signed URLs."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from workflow_api.storage import signing
from workflow_api.storage.base import InvalidKeyError
from workflow_api.storage.filesystem import INCOMING_DIRECTORY, FilesystemStore

SIGNING_KEY = b"k" * 32
BASE_URL = "http://api.example:8080/"


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    store = FilesystemStore(tmp_path / "storage", SIGNING_KEY, BASE_URL)
    store.prepare()
    return store


def _source(directory: Path, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=directory)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    return Path(name)


def _put(store: FilesystemStore, key: str, content: bytes) -> None:
    store.put_file(key, _source(store.incoming_dir(), content))


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# objects


def test_put_file_moves_the_source_in_and_size_reports_it(
    store: FilesystemStore, tmp_path: Path
) -> None:
    source = _source(tmp_path / "elsewhere", b"hello world")
    store.put_file("jobs/job-1/outputs/result", source)
    assert not source.exists()
    assert store.size("jobs/job-1/outputs/result") == 11
    assert store.object_path("jobs/job-1/outputs/result").read_bytes() == b"hello world"


def test_put_file_replaces_an_existing_object(store: FilesystemStore) -> None:
    _put(store, "uploads/u1", b"first version")
    _put(store, "uploads/u1", b"second")
    assert store.object_path("uploads/u1").read_bytes() == b"second"


@pytest.fixture
def other_filesystem() -> Iterator[Path]:
    shared_memory = Path("/dev/shm")
    if not shared_memory.is_dir() or shared_memory.stat().st_dev == Path("/tmp").stat().st_dev:
        pytest.skip("needs /dev/shm on a different filesystem than /tmp")
    with tempfile.TemporaryDirectory(dir=shared_memory) as directory:
        yield Path(directory)


def test_put_file_copies_across_filesystems_and_removes_the_source(
    store: FilesystemStore, other_filesystem: Path
) -> None:
    source = _source(other_filesystem, b"x" * 5_000_000)
    store.put_file("uploads/from-tmpfs", source)
    assert not source.exists()
    assert store.size("uploads/from-tmpfs") == 5_000_000
    assert os.listdir(store.incoming_dir()) == []


def test_size_is_none_for_missing_objects_and_directories(store: FilesystemStore) -> None:
    _put(store, "jobs/job-1/log.txt", b"log")
    assert store.size("jobs/job-2/log.txt") is None
    assert store.size("jobs/job-1") is None
    assert store.size("jobs/job-1/log.txt/deeper") is None


def test_delete_prefix_with_slash_removes_the_whole_directory(store: FilesystemStore) -> None:
    _put(store, "jobs/a/outputs/one", b"1")
    _put(store, "jobs/a/log.txt", b"2")
    _put(store, "jobs/ab/log.txt", b"3")
    store.delete_prefix("jobs/a/")
    assert store.size("jobs/a/outputs/one") is None
    assert store.size("jobs/a/log.txt") is None
    assert not store.object_path("jobs/a").exists()
    assert store.size("jobs/ab/log.txt") == 1


def test_delete_prefix_without_slash_matches_names_that_start_with_it(
    store: FilesystemStore,
) -> None:
    for key in ("uploads/ab1", "uploads/ab2", "uploads/ac", "uploadsx/ab"):
        _put(store, key, b"data")
    store.delete_prefix("uploads/ab")
    assert [store.size(key) for key in ("uploads/ab1", "uploads/ab2")] == [None, None]
    assert store.size("uploads/ac") == 4
    assert store.size("uploadsx/ab") == 4


def test_delete_prefix_with_slash_keeps_an_object_of_the_same_name(
    store: FilesystemStore,
) -> None:
    _put(store, "jobs/a", b"an object, not a directory")
    store.delete_prefix("jobs/a/")
    assert store.size("jobs/a") is not None


def test_delete_prefix_of_nothing_is_fine_and_keeps_incoming(store: FilesystemStore) -> None:
    store.delete_prefix("jobs/never/")
    store.delete_prefix("never")
    assert store.incoming_dir().is_dir()


@pytest.mark.parametrize("prefix", ["", "/", "../", "/etc/", ".incoming/"])
def test_delete_prefix_refuses_empty_and_escaping_prefixes(
    store: FilesystemStore, prefix: str
) -> None:
    with pytest.raises(InvalidKeyError):
        store.delete_prefix(prefix)


def test_prepare_is_idempotent_and_incoming_is_inside_root(
    store: FilesystemStore, tmp_path: Path
) -> None:
    store.prepare()
    store.prepare()
    assert store.incoming_dir() == tmp_path / "storage" / INCOMING_DIRECTORY


# confinement


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside", "a/../../outside", "a/./b", ".incoming/x", "a//b", "a\\b"],
)
def test_keys_that_could_escape_are_refused(store: FilesystemStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.object_path(key)
    with pytest.raises(InvalidKeyError):
        store.size(key)
    with pytest.raises(InvalidKeyError):
        store.signed_url("GET", key, timedelta(minutes=5))
    with pytest.raises(InvalidKeyError):
        _put(store, key, b"x")


def test_a_symbolic_link_out_of_the_root_is_refused(store: FilesystemStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store.object_path("jobs").mkdir()
    os.symlink(outside, store.object_path("jobs") / "link")
    with pytest.raises(InvalidKeyError):
        store.size("jobs/link/secret")
    with pytest.raises(InvalidKeyError):
        _put(store, "jobs/link/planted", b"x")
    assert not (outside / "planted").exists()


# signed URLs


def test_signed_url_points_at_the_storage_route(store: FilesystemStore) -> None:
    before = time.time()
    url = store.signed_url("PUT", "jobs/j/outputs/o", timedelta(minutes=10))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "http://api.example:8080/storage/jobs/j/outputs/o"
    )
    query = _query(url)
    assert query["method"] == "PUT"
    assert before + 590 <= int(query["expires"]) <= time.time() + 600
    assert len(query["signature"]) == 64


def test_a_signed_url_verifies(store: FilesystemStore) -> None:
    query = _query(store.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    store.verify("GET", "uploads/u1", query["expires"], query["signature"])


def test_a_tampered_signature_is_refused(store: FilesystemStore) -> None:
    query = _query(store.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    flipped = ("0" if query["signature"][0] != "0" else "1") + query["signature"][1:]
    with pytest.raises(signing.InvalidSignedUrlError):
        store.verify("GET", "uploads/u1", query["expires"], flipped)


def test_a_signature_for_another_key_is_refused(store: FilesystemStore) -> None:
    query = _query(store.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    with pytest.raises(signing.InvalidSignedUrlError):
        store.verify("GET", "uploads/u2", query["expires"], query["signature"])


def test_a_signature_for_another_method_is_refused(store: FilesystemStore) -> None:
    query = _query(store.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    with pytest.raises(signing.InvalidSignedUrlError):
        store.verify("PUT", "uploads/u1", query["expires"], query["signature"])


def test_an_extended_expiry_is_refused(store: FilesystemStore) -> None:
    query = _query(store.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    later = str(int(query["expires"]) + 3600)
    with pytest.raises(signing.InvalidSignedUrlError):
        store.verify("GET", "uploads/u1", later, query["signature"])


def test_a_signature_from_another_signing_key_is_refused(tmp_path: Path) -> None:
    other = FilesystemStore(tmp_path / "other", b"o" * 32, BASE_URL)
    query = _query(other.signed_url("GET", "uploads/u1", timedelta(minutes=1)))
    mine = FilesystemStore(tmp_path / "mine", SIGNING_KEY, BASE_URL)
    with pytest.raises(signing.InvalidSignedUrlError):
        mine.verify("GET", "uploads/u1", query["expires"], query["signature"])


def test_a_genuine_but_expired_url_is_reported_as_expired(store: FilesystemStore) -> None:
    expires = int(time.time()) - 5
    signature = signing.sign(SIGNING_KEY, "GET", "uploads/u1", expires)
    with pytest.raises(signing.ExpiredSignedUrlError):
        store.verify("GET", "uploads/u1", str(expires), signature)


@pytest.mark.parametrize(
    ("expires", "signature"),
    [(None, "0" * 64), ("123", None), ("", ""), ("12x", "0" * 64), ("1", "g" * 64), ("1", "é")],
)
def test_missing_or_malformed_signatures_are_refused(
    store: FilesystemStore, expires: str | None, signature: str | None
) -> None:
    with pytest.raises(signing.InvalidSignedUrlError):
        store.verify("GET", "uploads/u1", expires, signature)


def test_a_short_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signing key"):
        FilesystemStore(tmp_path, b"short", BASE_URL)
