"""Each consumer's storage: a bucket and a user per consumer on a real MinIO (credentials and
policies really enforced), a prefix per consumer in a shared bucket on moto."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio, MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException, S3Error

from provisioner.deployers.base import ConsumerSpec
from provisioner.slugs import consumer_slug
from provisioner.storage.consumer import NoConsumerStorage
from provisioner.storage.credentials import CredentialSecrets
from provisioner.storage.s3 import MinioUserStorage, SharedBucketStorage
from workflow_api.storage.s3 import S3Store
from workflow_common.s3 import make_s3_client
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import RunningProvisioner
from workflow_testkit.servers.minio import MinioServer
from workflow_testkit.servers.s3 import S3_ACCESS_KEY, S3_SECRET_KEY
from workflow_testkit.workflow_api import upload


def consumer(name: str) -> ConsumerSpec:
    slug = consumer_slug(f"{name}-{uuid.uuid4().hex[:6]}")
    return ConsumerSpec(name, slug, f"workflow-api/{slug}")


def put(client: Minio, bucket: str, key: str, data: bytes = b"payload") -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def read(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def client_of(settings: dict[str, str]) -> Minio:
    """What the consumer's workflow-api builds from the settings it is given."""
    return make_s3_client(
        settings["WORKFLOW_API_S3_ENDPOINT"],
        settings["WORKFLOW_API_S3_ACCESS_KEY"],
        settings["WORKFLOW_API_S3_SECRET_KEY"],
        secure=settings["WORKFLOW_API_S3_SECURE"] == "true",
        region=settings["WORKFLOW_API_S3_REGION"],
    )


def test_filesystem_storage_has_nothing_outside_the_data_directory() -> None:
    storage = NoConsumerStorage()
    assert storage.ensure(consumer("a")) == {}
    storage.remove(consumer("a"))


# --- MinIO: a bucket and a user per consumer --------------------------------------------------


@pytest.fixture
def minio_storage(minio_server: MinioServer, tmp_path: Path) -> Iterator[MinioUserStorage]:
    secrets = CredentialSecrets.load_or_create(tmp_path / "credentials.key")
    storage = MinioUserStorage(
        endpoint=f"http://{minio_server.endpoint}",
        access_key=minio_server.root_user,
        secret_key=minio_server.root_password,
        bucket_stem="wf",
        secret_for=lambda slug: secrets.derive(f"storage-user:{slug}"),
    )
    made: list[ConsumerSpec] = []
    original = storage.ensure

    def ensure(spec: ConsumerSpec) -> dict[str, str]:
        made.append(spec)
        return original(spec)

    storage.ensure = ensure  # type: ignore[method-assign]
    yield storage
    for spec in made:
        storage.remove(spec)


def admin_of(server: MinioServer) -> MinioAdmin:
    return MinioAdmin(
        endpoint=server.endpoint,
        credentials=StaticProvider(server.root_user, server.root_password),
        secure=False,
    )


@pytest.mark.minio
def test_each_consumer_reaches_only_its_own_bucket(minio_storage: MinioUserStorage) -> None:
    alice, bob = consumer("alice"), consumer("bob")
    as_alice, as_bob = minio_storage.ensure(alice), minio_storage.ensure(bob)
    assert as_alice["WORKFLOW_API_S3_BUCKET"] != as_bob["WORKFLOW_API_S3_BUCKET"]
    assert as_alice["WORKFLOW_API_S3_ACCESS_KEY"] != as_bob["WORKFLOW_API_S3_ACCESS_KEY"]
    assert as_alice["WORKFLOW_API_S3_PREFIX"] == ""
    alice_client, bob_client = client_of(as_alice), client_of(as_bob)
    alice_bucket, bob_bucket = as_alice["WORKFLOW_API_S3_BUCKET"], as_bob["WORKFLOW_API_S3_BUCKET"]
    put(alice_client, alice_bucket, "uploads/1", b"alice's")
    put(bob_client, bob_bucket, "uploads/1", b"bob's")
    assert read(alice_client, alice_bucket, "uploads/1") == b"alice's"

    refused = [
        lambda: read(alice_client, bob_bucket, "uploads/1"),
        lambda: put(alice_client, bob_bucket, "uploads/2"),
        lambda: alice_client.remove_object(bob_bucket, "uploads/1"),
        lambda: list(alice_client.list_objects(bob_bucket, recursive=True)),
        lambda: alice_client.make_bucket(f"wf-extra-{uuid.uuid4().hex[:8]}"),
        lambda: alice_client.set_bucket_policy(alice_bucket, json.dumps({})),
        lambda: alice_client.remove_bucket(alice_bucket),
    ]
    for index, attempt in enumerate(refused):
        with pytest.raises(S3Error) as error:
            attempt()
            pytest.fail(f"attempt {index} was allowed")
        assert error.value.code == "AccessDenied"
    assert read(bob_client, bob_bucket, "uploads/1") == b"bob's"  # untouched
    # MinIO answers ListBuckets with the buckets the user may use: bob's is not among them
    assert [bucket.name for bucket in alice_client.list_buckets()] == [alice_bucket]


@pytest.mark.minio
def test_the_workflow_api_store_works_with_the_consumer_credentials(
    minio_storage: MinioUserStorage, tmp_path: Path
) -> None:
    settings = minio_storage.ensure(consumer("carol"))
    store = S3Store(client_of(settings), settings["WORKFLOW_API_S3_BUCKET"])
    store.prepare()
    source = tmp_path / "input.bin"
    source.write_bytes(b"x" * 1000)
    store.put_file("uploads/a", source)
    assert store.size("uploads/a") == 1000
    url = store.signed_url("GET", "uploads/a", timedelta(minutes=5))
    assert httpx.get(url, timeout=10).content == b"x" * 1000
    upload = store.signed_url("PUT", "jobs/j/outputs/o", timedelta(minutes=5))
    assert httpx.put(upload, content=b"result", timeout=10).status_code == 200
    store.delete_prefix("uploads")
    assert store.size("uploads/a") is None


@pytest.mark.minio
def test_ensure_again_changes_nothing(minio_storage: MinioUserStorage) -> None:
    dave = consumer("dave")
    first = minio_storage.ensure(dave)
    put(client_of(first), first["WORKFLOW_API_S3_BUCKET"], "kept")
    second = minio_storage.ensure(dave)
    assert second == first  # the same derived secret, so the Secret and pod stay as they are
    assert read(client_of(second), second["WORKFLOW_API_S3_BUCKET"], "kept") == b"payload"


@pytest.mark.minio
def test_remove_deletes_the_bucket_its_objects_the_user_and_its_policy(
    minio_storage: MinioUserStorage, minio_server: MinioServer
) -> None:
    erin = consumer("erin")
    settings = minio_storage.ensure(erin)
    bucket, user = settings["WORKFLOW_API_S3_BUCKET"], settings["WORKFLOW_API_S3_ACCESS_KEY"]
    for index in range(3):
        put(client_of(settings), bucket, f"jobs/{index}/log.txt")

    minio_storage.remove(erin)

    assert not minio_server.client().bucket_exists(bucket)
    with pytest.raises(S3Error) as error:
        client_of(settings).list_buckets()
    assert error.value.code == "InvalidAccessKeyId"
    admin = admin_of(minio_server)
    for lookup in (admin.user_info, admin.policy_info):
        with pytest.raises(MinioAdminException) as missing:
            lookup(user)
        assert missing.value._code == "404"
    minio_storage.remove(erin)  # again: nothing left, no error


# --- plain S3 (moto): a prefix per consumer -----------------------------------------------------


@pytest.mark.s3
def test_shared_bucket_gives_a_prefix_per_consumer_and_remove_deletes_only_it(
    s3_endpoint: str, s3_bucket_name: str
) -> None:
    storage = SharedBucketStorage(
        endpoint=f"http://{s3_endpoint}",
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        bucket=s3_bucket_name,
    )
    frank, gina = consumer("frank"), consumer("gina")
    settings = storage.ensure(frank)
    assert settings["WORKFLOW_API_S3_PREFIX"] == f"{frank.slug}/"
    assert settings["WORKFLOW_API_S3_BUCKET"] == s3_bucket_name
    assert settings["WORKFLOW_API_S3_ENDPOINT"] == s3_endpoint
    assert settings["WORKFLOW_API_S3_SECURE"] == "false"
    client = client_of(settings)
    client.make_bucket(s3_bucket_name)
    for spec in (frank, gina):
        put(client, s3_bucket_name, f"{storage.prefix(spec)}uploads/1")

    storage.remove(frank)
    storage.remove(frank)

    left = [entry.object_name for entry in client.list_objects(s3_bucket_name, recursive=True)]
    assert left == [f"{gina.slug}/uploads/1"]


# --- the whole provisioner: local deployer, a MinIO bucket and user per consumer -----------------


@pytest.mark.minio
def test_a_consumers_workflow_api_stores_in_its_own_bucket_until_teardown(
    provisioner_factory: Callable[..., RunningProvisioner], minio_server: MinioServer
) -> None:
    provisioner = provisioner_factory(
        storage="s3",
        s3_endpoint=f"http://{minio_server.endpoint}",
        s3_access_key=minio_server.root_user,
        s3_secret_key=minio_server.root_password,
        s3_bucket="flow",
        s3_isolation="minio",
    )
    grant = provisioner.admin.post(
        "/admin/grants", json={"consumer_id": "olga", "asset_id": "echo"}
    ).json()

    def credentials() -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {grant['secret']}"}
        answer = httpx.get(f"{provisioner.base_url}/credentials", headers=headers)
        return answer.json() if answer.status_code == 200 else None

    document = poll(credentials, 30, "credentials")
    with httpx.Client(
        base_url=document["endpoint"],
        headers={"Authorization": f"Bearer {document['token']}"},
        timeout=10,
    ) as api:
        uploaded = upload(api, b"into olga's bucket")
    bucket = f"flow-{consumer_slug('olga')}"
    stored = list(minio_server.client().list_objects(bucket, recursive=True))
    assert [entry.size for entry in stored] == [len(b"into olga's bucket")], uploaded

    provisioner.admin.delete("/admin/consumers/olga")
    provisioner.admin_api.assert_nothing_left("olga", document["endpoint"])
    assert not minio_server.client().bucket_exists(bucket)
