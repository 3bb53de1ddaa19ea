"""The S3 store's presigned POST uploads: the policy names one key and bounds the size, and a
real MinIO enforces both (moto does not check policies: those tests are skipped there)."""

from __future__ import annotations

import os
from datetime import timedelta

import httpx
import pytest
from minio import Minio

from workflow_api.storage.s3 import S3Store

pytestmark = pytest.mark.s3

TTL = timedelta(minutes=5)


@pytest.fixture
def store(s3_client: Minio, s3_bucket_name: str) -> S3Store:
    store = S3Store(s3_client, s3_bucket_name, prefix="consumer-a")
    store.prepare()
    return store


def _post(url: str, form: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(url, data=form, files={"file": ("blob", body)}, timeout=30)


def test_a_presigned_post_within_its_cap_stores_the_object(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    response = _post(upload.url, upload.form, b"x" * 1000)
    assert response.status_code in (200, 201, 204), response.text
    assert store.size("jobs/j/outputs/blob") == 1000


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_presigned_post_beyond_its_cap_is_refused_and_stores_nothing(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    response = _post(upload.url, upload.form, os.urandom(1001))
    print(response.status_code, response.headers, response.text)
    assert response.status_code == 400
    assert "EntityTooLarge" in response.text
    assert store.size("jobs/j/outputs/blob") is None


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_presigned_post_is_for_its_own_key_only(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    other = {**upload.form, "key": "consumer-a/uploads/someone-elses"}
    response = _post(upload.url, other, b"x")
    assert response.status_code == 403, response.text
    assert store.size("uploads/someone-elses") is None
