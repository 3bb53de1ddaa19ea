"""The S3 server of the test session: the real MinIO server when its binary is built (CI builds
it with .ci/build-tools.sh), else moto's `ThreadedMotoServer`, with a warning in the test output.

Both listen on 127.0.0.1 on a free port and take the same credentials. moto answers the S3 API
(buckets, multipart, presigned URLs, batch delete) but checks no credentials, signatures or
presigned-URL expiry: the tests of those ask for `s3_checks_signatures` and are skipped on moto.
With `WORKFLOW_TESTS_REQUIRE_MINIO=1` (CI) a missing MinIO fails the session instead.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from minio import Minio

from workflow_common.s3 import make_s3_client
from workflow_testkit.servers.minio import (
    TEST_ROOT_PASSWORD,
    TEST_ROOT_USER,
    MinioServer,
    MinioUnavailableError,
    find_minio,
    running_minio,
)

S3_ACCESS_KEY = TEST_ROOT_USER
S3_SECRET_KEY = TEST_ROOT_PASSWORD  # moto accepts any credentials; MinIO is started with these


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    minio: MinioServer | None  # None: moto

    @property
    def checks_signatures(self) -> bool:
        return self.minio is not None


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        binary = find_minio()
    except MinioUnavailableError as error:
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_MINIO") == "1":
            pytest.fail(f"WORKFLOW_TESTS_REQUIRE_MINIO=1 but {error}")
        warnings.warn(
            f"S3 tests fall back to moto, which checks no signatures or expiry: {error}",
            stacklevel=1,
        )
        yield from _moto_server()
        return
    with running_minio(binary) as server:
        yield S3Server(server.endpoint, server)


def _moto_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only when MinIO is missing

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"{host}:{port}", None)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    """`host:port` of the session's S3 server."""
    return s3_server.endpoint


@pytest.fixture
def s3_checks_signatures(s3_server: S3Server) -> None:
    """Skips the test unless the S3 server really checks signatures and expiry (MinIO)."""
    if not s3_server.checks_signatures:
        pytest.skip("the S3 server is moto, which checks no signatures or expiry")


@pytest.fixture
def s3_client(s3_endpoint: str) -> Minio:
    return make_s3_client(
        s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, secure=False, region="us-east-1"
    )


@pytest.fixture
def s3_bucket_name() -> str:
    """A bucket name no other test uses (the server is shared by the session)."""
    return f"test-{uuid.uuid4().hex[:20]}"
