"""Uploads: streaming, digest, size limit, quota, input validation against uploads."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator

from workflow_testkit.workflow_api import RunningApi, execute, upload, wait_for_job

MiB = 1024 * 1024


def _chunks(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = os.urandom(chunk)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def test_upload_streams_without_content_length_and_reports_digest(api: RunningApi) -> None:
    digest = hashlib.sha256()
    body = list(_chunks(12 * MiB + 5))
    for piece in body:
        digest.update(piece)

    response = api.consumer.post("/uploads", params={"filename": "big.bin"}, content=iter(body))

    assert response.status_code == 201, response.text
    document = response.json()
    assert document["size"] == 12 * MiB + 5
    assert document["sha256"] == digest.hexdigest()
    assert document["href"] == f"{api.base_url}/uploads/{document['id']}"
    assert api.consumer.get(f"/uploads/{document['id']}").json()["sha256"] == digest.hexdigest()
    stored = api.settings.data_dir / "storage" / "uploads" / document["id"]
    assert stored.stat().st_size == 12 * MiB + 5


def test_upload_over_the_size_limit_is_refused_and_leaves_nothing(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(max_upload_size=2 * MiB)
    declared = api.consumer.post("/uploads", content=b"x" * (2 * MiB + 1))
    streamed = api.consumer.post("/uploads", content=_chunks(3 * MiB))

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert "limited to" in response.json()["detail"] or "limit" in response.json()["detail"]
    assert api.consumer.get("/uploads").json()["uploads"] == []
    assert not any((api.settings.data_dir / "incoming").iterdir())


def test_quota_counts_uploads_and_job_outputs(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(storage_quota=6 * MiB)
    client = api.consumer
    first = upload(client, os.urandom(4 * MiB))
    refused = client.post("/uploads", content=os.urandom(3 * MiB))
    assert refused.status_code == 413
    assert "quota" in refused.json()["detail"]

    client.delete(f"/uploads/{first['id']}").raise_for_status()
    assert client.get(f"/uploads/{first['id']}").status_code == 404
    upload(client, os.urandom(3 * MiB))


def test_empty_upload_is_refused(api: RunningApi) -> None:
    response = api.consumer.post("/uploads", content=b"")
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_upload_larger_than_the_inputs_limit_is_refused_at_execute(api: RunningApi) -> None:
    asset = api.services.assets.get("input-dummy")
    limit = asset.input("settings").max_size  # type: ignore[union-attr]
    settings_limit = min(
        limit or api.settings.max_upload_size, api.settings.max_inline_env_file_size
    )
    document = upload(api.consumer, b"GREETING=1\n" + b"#" * settings_limit)
    tiny = upload(api.consumer, b"x")
    response = api.consumer.post(
        "/processes/input-dummy/execution",
        json={
            "inputs": {
                "settings": {"href": document["href"]},
                "document": {"href": tiny["href"]},
                "dataset": {"href": tiny["href"]},
            }
        },
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["input"] == "settings"
    assert "limit" in problem["detail"]


def test_upload_listing_pages(api: RunningApi) -> None:
    for index in range(3):
        upload(api.consumer, f"file {index}".encode())
    first = api.consumer.get("/uploads", params={"limit": 2}).json()
    assert len(first["uploads"]) == 2
    next_link = next(link for link in first["links"] if link["rel"] == "next")
    second = api.consumer.get(next_link["href"]).json()
    assert len(second["uploads"]) == 1
    ids = {u["id"] for u in first["uploads"]} | {u["id"] for u in second["uploads"]}
    assert len(ids) == 3


def test_job_can_use_an_upload_twice_and_the_upload_survives(api: RunningApi) -> None:
    client = api.consumer
    document = upload(client, b"reusable")
    dataset = upload(client, _zip_bytes())
    for _ in range(2):
        job_id = execute(
            client,
            "input-dummy",
            {
                "document": {"href": document["href"]},
                "dataset": {"href": dataset["href"]},
                "settings": "GREETING=a",
            },
        )
        assert wait_for_job(client, job_id)["status"] == "successful"
    assert client.get(f"/uploads/{document['id']}").status_code == 200


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.txt", "x")
    return buffer.getvalue()
