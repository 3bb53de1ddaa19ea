"""The S3 kinds of consumer storage (see `storage.consumer`): a shared bucket with a prefix per
consumer, or with MinIO a bucket and a user per consumer; `s3_consumer_storage` picks one from
the nested `S3Settings`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from minio import Minio, MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.deleteobjects import DeleteObject
from minio.error import MinioAdminException, MinioException

from provisioner.deployers.base import ConsumerSpec
from provisioner.slugs import prefixed_label
from provisioner.storage.consumer import ConsumerStorageError
from provisioner.storage.settings import S3Settings
from workflow_common.s3 import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, make_s3_client
from workflow_contracts.workflow_api_env import S3Storage

log = logging.getLogger(__name__)

REGION = "us-east-1"  # also spares a GetBucketLocation before each request
_MISSING = frozenset({"NoSuchBucket", "NoSuchKey"})
ALREADY_ATTACHED = frozenset(
    {"XMinioPolicyAlreadyAttached", "XMinioAdminPolicyChangeAlreadyApplied"}
)


def _endpoint_parts(endpoint: str, secure: bool) -> tuple[str, bool]:
    """`host:port` and whether to use TLS, from `host:port` or a URL (whose scheme wins)."""
    if "://" in endpoint:
        scheme, _, rest = endpoint.partition("://")
        return rest.rstrip("/"), scheme.lower() == "https"
    return endpoint, secure


def _settings(
    endpoint: str, secure: bool, access: str, secret: str, bucket: str, prefix: str
) -> dict[str, str]:
    return S3Storage(
        s3_endpoint=endpoint,
        s3_secure=secure,
        s3_access_key=access,
        s3_secret_key=secret,
        s3_bucket=bucket,
        s3_prefix=prefix,
        s3_region=REGION,
    ).to_env()


def _delete_objects(client: Minio, bucket: str, prefix: str = "") -> None:
    """Every object under `prefix` (the whole bucket when empty), in batches of 1,000."""
    listing = client.list_objects(bucket, prefix=prefix or None, recursive=True)
    names = (DeleteObject(entry.object_name) for entry in listing if entry.object_name)
    failures = [
        error for error in client.remove_objects(bucket, names) if error.code not in _MISSING
    ]
    if failures:
        first = failures[0]
        what = f"{first.name}: {first.code}"
        raise ConsumerStorageError(f"could not delete {len(failures)} objects in {bucket}: {what}")


class _Connection:
    """The provisioner's own S3 endpoint and keys, and one client made on first use."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, secure: bool) -> None:
        self.endpoint, self.secure = _endpoint_parts(endpoint, secure)
        self.access_key, self.secret_key = access_key, secret_key
        self._client: Minio | None = None

    def client(self) -> Minio:
        if self._client is None:
            self._client = make_s3_client(
                self.endpoint, self.access_key, self.secret_key, secure=self.secure, region=REGION
            )
        return self._client


class SharedBucketStorage:
    """One bucket for everyone, `<base>/<slug>/` per consumer, the shared credentials.

    Any workflow-api holds credentials that reach every consumer's prefix: a compromised
    workflow-api (or a leaked Secret) exposes all consumers. Use it only with a server that
    cannot make per-consumer credentials; prefer `MinioUserStorage`.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = True,
        base_prefix: str = "",
    ) -> None:
        self._s3 = _Connection(endpoint, access_key, secret_key, secure)
        self._bucket = bucket
        self._base = base_prefix.strip("/")

    def prefix(self, spec: ConsumerSpec) -> str:
        return f"{self._base}/{spec.slug}/" if self._base else f"{spec.slug}/"

    def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
        # The workflow-api makes the shared bucket if it is missing: nothing to create here.
        s3 = self._s3
        return _settings(
            s3.endpoint, s3.secure, s3.access_key, s3.secret_key, self._bucket, self.prefix(spec)
        )

    def remove(self, spec: ConsumerSpec) -> None:
        """The prefix's objects: the workflow-api purges them too, unless it is already gone."""
        with _storage_errors(f"S3 {self._s3.endpoint}, bucket {self._bucket}"):
            try:
                _delete_objects(self._s3.client(), self._bucket, self.prefix(spec))
            except MinioException as error:
                if getattr(error, "code", None) not in _MISSING:
                    raise


def bucket_policy(bucket: str) -> dict[str, Any]:
    """Everything the workflow-api does, on its own bucket only (no bucket creation/deletion,
    no bucket policy, nothing else on the server)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


class MinioUserStorage:
    """A bucket `<stem>-<slug>` per consumer and a MinIO user of the same name whose only
    policy (same name again) reaches that bucket.

    The provisioner's credentials must be MinIO's root or an admin user (users, policies,
    buckets). The consumer's secret key is derived (`secret_for(slug)`, an HMAC under the
    provisioner's key), never stored: `ensure` sets the same one every time, so repeated calls
    change nothing, and the secret lives only in MinIO and the consumer's workflow-api settings.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket_stem: str,
        secret_for: Callable[[str], str],
        secure: bool = True,
    ) -> None:
        self._s3 = _Connection(endpoint, access_key, secret_key, secure)
        self._stem = bucket_stem
        self._secret_for = secret_for
        self._admin: MinioAdmin | None = None

    def name(self, spec: ConsumerSpec) -> str:
        """The consumer's bucket, user and policy name."""
        return prefixed_label(f"{self._stem}-", spec.slug)

    def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
        name = self.name(spec)
        secret = self._secret_for(spec.slug)
        with _storage_errors(f"MinIO {self._s3.endpoint}, bucket and user {name}"):
            client = self._s3.client()
            if not client.bucket_exists(name):
                try:
                    client.make_bucket(name)
                except MinioException as error:
                    if getattr(error, "code", None) != "BucketAlreadyOwnedByYou":
                        raise
                log.info("consumer %s: bucket %s created", spec.consumer_id, name)
            admin = self._admin_client()
            admin.policy_add(name, policy=bucket_policy(name))
            admin.user_add(name, secret)  # same derived secret: an update that changes nothing
            try:
                admin.attach_policy([name], user=name)
            except MinioAdminException as error:
                if _admin_code(error) not in ALREADY_ATTACHED:
                    raise
        return _settings(self._s3.endpoint, self._s3.secure, name, secret, name, "")

    def remove(self, spec: ConsumerSpec) -> None:
        """The bucket with every object, then the user and its policy."""
        name = self.name(spec)
        with _storage_errors(f"MinIO {self._s3.endpoint}, bucket and user {name}"):
            client = self._s3.client()
            try:
                _delete_objects(client, name)
                client.remove_bucket(name)
                log.info("consumer %s: bucket %s deleted", spec.consumer_id, name)
            except MinioException as error:
                if getattr(error, "code", None) not in _MISSING:
                    raise
            admin = self._admin_client()
            for remove in (admin.user_remove, admin.policy_remove):
                try:
                    remove(name)
                except MinioAdminException as error:
                    if _admin_code(error) not in {
                        "XMinioAdminNoSuchUser",
                        "XMinioAdminNoSuchPolicy",
                    }:
                        raise

    def _admin_client(self) -> MinioAdmin:
        if self._admin is None:
            http = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
                retries=urllib3.Retry(
                    total=3, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]
                ),
            )
            self._admin = MinioAdmin(
                endpoint=self._s3.endpoint,
                credentials=StaticProvider(self._s3.access_key, self._s3.secret_key),
                secure=self._s3.secure,
                region=REGION,
                http_client=http,
            )
        return self._admin


def _admin_code(error: MinioAdminException) -> str | None:
    """MinIO's error code (`XMinioAdminNoSuchUser`, ...) from an admin API error body."""
    try:
        body = json.loads(error._body)  # the exception keeps the body only there
    except (TypeError, ValueError):
        return None
    code = body.get("Code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """The client's errors as `ConsumerStorageError`, naming what was being done."""
    try:
        yield
    except (MinioException, MinioAdminException, urllib3.exceptions.HTTPError) as error:
        raise ConsumerStorageError(f"{what}: {error}") from error


def s3_consumer_storage(
    settings: S3Settings, *, secret_for: Callable[[str], str]
) -> SharedBucketStorage | MinioUserStorage:
    """The consumer storage `settings.isolation` names, on the provisioner's S3 server (the
    settings are complete: `S3Settings.check_complete` ran at start-up)."""
    endpoint, bucket = settings.endpoint, settings.bucket
    access_key, secret_key = settings.access_key, settings.secret_key
    assert endpoint and bucket and access_key is not None and secret_key is not None
    access, secret = access_key.get_secret_value(), secret_key.get_secret_value()
    if settings.isolation == "minio":
        return MinioUserStorage(
            endpoint=endpoint,
            access_key=access,
            secret_key=secret,
            secure=settings.secure,
            bucket_stem=bucket,
            secret_for=secret_for,
        )
    return SharedBucketStorage(
        endpoint=endpoint,
        access_key=access,
        secret_key=secret,
        secure=settings.secure,
        bucket=bucket,
    )
