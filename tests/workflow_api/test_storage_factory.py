"""`make_store` builds the store the settings choose, with a signing key that survives restarts."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from workflow_api.settings import Settings
from workflow_api.storage import signing
from workflow_api.storage.factory import SIGNING_KEY_FILE, make_store
from workflow_api.storage.filesystem import FilesystemStore
from workflow_api.storage.s3 import S3Store
from workflow_testkit.servers.s3 import S3_ACCESS_KEY, S3_SECRET_KEY


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "consumer_id": "consumer-a",
        "data_dir": data_dir,
        "assets_dir": data_dir / "assets",
        "public_url": "http://127.0.0.1:8080/",
        "token_audience": "workflow-api-consumer-a",
        "jwks_file": data_dir / "jwks.json",
    }
    return Settings(**(values | overrides))


def _verify(store: FilesystemStore, url: str) -> None:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    key = parts.path.removeprefix("/storage/")
    store.verify(query["method"], key, query["expires"], query["signature"])


def test_filesystem_store_lives_in_the_data_dir_and_signs_for_the_public_url(
    tmp_path: Path,
) -> None:
    store = make_store(_settings(tmp_path))
    assert isinstance(store, FilesystemStore)
    store.prepare()
    assert store.incoming_dir().parent == tmp_path / "storage"
    url = store.signed_url("GET", "uploads/u1", timedelta(minutes=1))
    assert url.startswith("http://127.0.0.1:8080/storage/uploads/u1?")


def test_a_generated_signing_key_is_private_and_reused_after_a_restart(tmp_path: Path) -> None:
    first = make_store(_settings(tmp_path))
    assert isinstance(first, FilesystemStore)
    key_file = tmp_path / SIGNING_KEY_FILE
    assert len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    url = first.signed_url("PUT", "jobs/j/log.txt", timedelta(minutes=1))

    restarted = make_store(_settings(tmp_path))
    assert isinstance(restarted, FilesystemStore)
    _verify(restarted, url)
    assert [path.name for path in tmp_path.iterdir() if "signing" in path.name] == [
        SIGNING_KEY_FILE
    ]


def test_separate_data_dirs_get_separate_keys(tmp_path: Path) -> None:
    first = make_store(_settings(tmp_path / "a"))
    second = make_store(_settings(tmp_path / "b"))
    assert isinstance(first, FilesystemStore)
    assert isinstance(second, FilesystemStore)
    url = first.signed_url("GET", "uploads/u1", timedelta(minutes=1))
    with pytest.raises(signing.InvalidSignedUrlError):
        _verify(second, url)


def test_a_configured_signing_key_is_used_and_nothing_is_generated(tmp_path: Path) -> None:
    configured = "c" * 40
    store = make_store(_settings(tmp_path, storage_signing_key=configured))
    assert isinstance(store, FilesystemStore)
    url = store.signed_url("GET", "uploads/u1", timedelta(minutes=1))
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert signing.sign(configured.encode(), "GET", "uploads/u1", expires) in url
    assert not (tmp_path / SIGNING_KEY_FILE).exists()


def test_a_short_configured_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STORAGE_SIGNING_KEY"):
        make_store(_settings(tmp_path, storage_signing_key="too-short"))


def test_a_damaged_key_file_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    (tmp_path / SIGNING_KEY_FILE).write_bytes(b"truncated")
    with pytest.raises(ValueError, match="remove it to regenerate"):
        make_store(_settings(tmp_path))
    assert (tmp_path / SIGNING_KEY_FILE).read_bytes() == b"truncated"


@pytest.mark.s3
def test_s3_settings_build_a_working_s3_store(
    tmp_path: Path, s3_endpoint: str, s3_bucket_name: str
) -> None:
    settings = _settings(
        tmp_path,
        storage="s3",
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=s3_bucket_name,
        s3_prefix="consumer-a",
        s3_secure=False,
    )
    store = make_store(settings)
    assert isinstance(store, S3Store)
    store.prepare()
    source = tmp_path / "source"
    source.write_bytes(b"through the factory")
    store.put_file("uploads/u1", source)
    assert store.size("uploads/u1") == len(b"through the factory")
    assert not (tmp_path / SIGNING_KEY_FILE).exists()
