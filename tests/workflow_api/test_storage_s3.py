"""The S3 store against a real S3 server (MinIO, built by .ci/build-tools.sh; moto when it is
missing outside CI) through the minio client.

The refusals (tampered, expired, other object, wrong credentials) need a server that checks
signatures: they ask for `s3_checks_signatures` and are skipped on moto.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from minio import Minio
from minio.error import S3Error

from workflow_api.storage.base import InvalidKeyError
from workflow_api.storage.s3 import PART_SIZE, S3Store
from workflow_common.s3 import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, make_s3_client
from workflow_testkit.servers.s3 import S3_ACCESS_KEY, S3_SECRET_KEY

pytestmark = pytest.mark.s3

MiB = 1024**2
TTL = timedelta(minutes=5)


@pytest.fixture
def store(s3_client: Minio, s3_bucket_name: str) -> S3Store:
    store = S3Store(s3_client, s3_bucket_name, prefix="consumer-a")
    store.prepare()
    return store


def _source(directory: Path, content: bytes) -> Path:
    path = directory / f"source-{hashlib.sha256(content).hexdigest()[:12]}"
    path.write_bytes(content)
    return path


def _object_names(client: Minio, bucket: str) -> list[str]:
    return sorted(str(item.object_name) for item in client.list_objects(bucket, recursive=True))


def _sha256_of_download(url: str) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(MiB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_put_file_uploads_a_large_file_in_parts_and_removes_the_source(
    store: S3Store, s3_client: Minio, s3_bucket_name: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as file:
        for _ in range(80):
            block = os.urandom(MiB)
            digest.update(block)
            file.write(block)
    store.put_file("jobs/j/outputs/model", source)
    assert not source.exists()
    assert store.size("jobs/j/outputs/model") == 80 * MiB
    status = s3_client.stat_object(s3_bucket_name, "consumer-a/jobs/j/outputs/model")
    assert str(status.etag).endswith(f"-{80 * MiB // PART_SIZE}")  # a multipart upload
    download = store.signed_url("GET", "jobs/j/outputs/model", TTL)
    assert _sha256_of_download(download) == digest.hexdigest()


def test_size_is_none_for_a_missing_object(store: S3Store) -> None:
    assert store.size("uploads/none") is None


def test_a_presigned_get_url_downloads_the_object_with_plain_http(
    store: S3Store, tmp_path: Path
) -> None:
    store.put_file("uploads/u1", _source(tmp_path, b"input data"))
    response = httpx.get(store.signed_url("GET", "uploads/u1", TTL), timeout=30)
    assert response.status_code == 200
    assert response.content == b"input data"


def test_a_presigned_put_url_uploads_with_plain_http(store: S3Store) -> None:
    content = os.urandom(3 * MiB)
    url = store.signed_url("PUT", "jobs/j/outputs/result", TTL)
    response = httpx.put(url, content=content, timeout=30)
    assert response.status_code == 200
    assert store.size("jobs/j/outputs/result") == len(content)
    download = httpx.get(store.signed_url("GET", "jobs/j/outputs/result", TTL), timeout=30)
    assert download.content == content


def test_signed_urls_name_the_prefixed_object(store: S3Store, s3_bucket_name: str) -> None:
    url = httpx.URL(store.signed_url("GET", "uploads/u1", TTL))
    assert url.path == f"/{s3_bucket_name}/consumer-a/uploads/u1"


def test_stores_with_other_prefixes_or_buckets_do_not_see_each_other(
    s3_client: Minio, s3_bucket_name: str, tmp_path: Path
) -> None:
    first = S3Store(s3_client, s3_bucket_name, prefix="consumer-a")
    second = S3Store(s3_client, s3_bucket_name, prefix="consumer-b/")
    other_bucket = S3Store(s3_client, f"{s3_bucket_name}-other")
    for index, store in enumerate((first, second, other_bucket)):
        store.prepare()
        store.put_file("uploads/u1", _source(tmp_path, b"x" * (index + 1)))
    first.put_file("uploads/only-a", _source(tmp_path, b"only a"))

    assert [s.size("uploads/u1") for s in (first, second, other_bucket)] == [1, 2, 3]
    assert second.size("uploads/only-a") is None
    assert other_bucket.size("uploads/only-a") is None
    assert _object_names(s3_client, s3_bucket_name) == [
        "consumer-a/uploads/only-a",
        "consumer-a/uploads/u1",
        "consumer-b/uploads/u1",
    ]

    first.delete_prefix("uploads/")
    assert first.size("uploads/u1") is None
    assert second.size("uploads/u1") == 2
    assert other_bucket.size("uploads/u1") == 3


@pytest.mark.slow
def test_delete_prefix_removes_more_than_one_batch_of_keys(
    store: S3Store, s3_client: Minio, s3_bucket_name: str, tmp_path: Path
) -> None:
    def put(index: int) -> None:
        name = f"consumer-a/jobs/j/outputs/part-{index:05d}"
        s3_client.put_object(s3_bucket_name, name, BytesIO(b"p"), length=1)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, range(1100)))
    store.put_file("jobs/k/log.txt", _source(tmp_path, b"another job"))
    store.put_file("jobs/jj/log.txt", _source(tmp_path, b"a job whose id starts alike"))

    store.delete_prefix("jobs/j/")

    assert _object_names(s3_client, s3_bucket_name) == [
        "consumer-a/jobs/jj/log.txt",
        "consumer-a/jobs/k/log.txt",
    ]


def test_delete_prefix_of_nothing_is_fine(store: S3Store) -> None:
    store.delete_prefix("jobs/never/")


@pytest.mark.parametrize("prefix", ["", "/", "../x"])
def test_delete_prefix_refuses_empty_and_invalid_prefixes(store: S3Store, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.delete_prefix(prefix)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", ".hidden"])
def test_invalid_keys_are_refused_before_any_request(store: S3Store, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.size(key)
    with pytest.raises(InvalidKeyError):
        store.signed_url("PUT", key, TTL)


def test_prepare_is_idempotent(s3_client: Minio, s3_bucket_name: str) -> None:
    store = S3Store(s3_client, s3_bucket_name)
    store.prepare()
    store.prepare()
    assert s3_client.bucket_exists(s3_bucket_name)


class _ClientThatMissesTheBucket(Minio):
    """Another instance created the bucket between our existence check and our create."""

    def bucket_exists(self, bucket_name: str) -> bool:
        return False


@pytest.fixture
def racing_client(s3_endpoint: str) -> Iterator[Minio]:
    # Outside us-east-1, creating an owned bucket again fails with BucketAlreadyOwnedByYou.
    yield _ClientThatMissesTheBucket(
        s3_endpoint,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        secure=False,
        region="eu-west-1",
    )


def test_prepare_treats_a_bucket_already_owned_by_us_as_done(
    racing_client: Minio, s3_bucket_name: str
) -> None:
    racing_client.make_bucket(s3_bucket_name)
    S3Store(racing_client, s3_bucket_name).prepare()


def test_the_client_has_timeouts_and_bounded_retries(s3_endpoint: str) -> None:
    client = make_s3_client(f"http://{s3_endpoint}", S3_ACCESS_KEY, S3_SECRET_KEY)
    pool_settings = client._http.connection_pool_kw
    assert pool_settings["timeout"].connect_timeout == CONNECT_TIMEOUT_SECONDS
    assert pool_settings["timeout"].read_timeout == READ_TIMEOUT_SECONDS
    assert 0 < pool_settings["retries"].total <= 5
    # The URL form of the endpoint chose plain HTTP, and the client works.
    S3Store(client, "timeouts-check").prepare()
    assert client.bucket_exists("timeouts-check")


def _status_of(method: str, url: str, content: bytes | None = None) -> int:
    return httpx.request(method, url, content=content, timeout=30).status_code


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_tampered_presigned_url_is_refused(store: S3Store, tmp_path: Path) -> None:
    store.put_file("jobs/j/outputs/a", _source(tmp_path, b"secret of a"))
    store.put_file("jobs/j/outputs/b", _source(tmp_path, b"secret of b"))
    url = store.signed_url("GET", "jobs/j/outputs/a", TTL)
    assert _status_of("GET", url) == 200
    assert _status_of("GET", url.replace("/outputs/a?", "/outputs/b?")) == 403  # other object
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert _status_of("GET", url.replace(signature, forged)) == 403
    longer = url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
    assert longer != url and _status_of("GET", longer) == 403  # the expiry is signed too


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_presigned_get_url_does_not_allow_a_put(store: S3Store, tmp_path: Path) -> None:
    store.put_file("jobs/j/outputs/a", _source(tmp_path, b"original"))
    url = store.signed_url("GET", "jobs/j/outputs/a", TTL)
    assert _status_of("PUT", url, b"overwritten") == 403
    assert _sha256_of_download(url) == hashlib.sha256(b"original").hexdigest()


@pytest.mark.slow
@pytest.mark.usefixtures("s3_checks_signatures")
def test_an_expired_presigned_url_is_refused(store: S3Store, tmp_path: Path) -> None:
    store.put_file("jobs/j/outputs/a", _source(tmp_path, b"short-lived"))
    get_url = store.signed_url("GET", "jobs/j/outputs/a", timedelta(seconds=1))
    put_url = store.signed_url("PUT", "jobs/j/outputs/late", timedelta(seconds=1))
    assert _status_of("GET", get_url) == 200
    time.sleep(2.5)
    assert _status_of("GET", get_url) == 403
    assert _status_of("PUT", put_url, b"too late") == 403
    assert store.size("jobs/j/outputs/late") is None


@pytest.mark.usefixtures("s3_checks_signatures")
def test_wrong_credentials_are_refused(s3_endpoint: str, s3_bucket_name: str) -> None:
    intruder = make_s3_client(s3_endpoint, S3_ACCESS_KEY, "not-the-secret-key", secure=False)
    with pytest.raises(S3Error) as refused:
        S3Store(intruder, s3_bucket_name).prepare()
    assert refused.value.code == "SignatureDoesNotMatch"
