"""The S3 client both services build the same way: every request with a connect and read timeout
and bounded retries (the workflow-api's object store, the provisioner's consumer storage)."""

from __future__ import annotations

import urllib3
from minio import Minio

CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
_RETRIES = 3


def make_s3_client(
    endpoint: str,
    access_key: str,
    secret_key: str,
    *,
    secure: bool = True,
    region: str | None = None,
) -> Minio:
    """A Minio client whose every request has a connect and read timeout and bounded retries.

    `endpoint` is `host[:port]`; a URL (`http://host:port`) is accepted too, and its scheme
    then decides `secure`.
    """
    if "://" in endpoint:
        scheme, _, endpoint = endpoint.partition("://")
        secure = scheme.lower() == "https"
        endpoint = endpoint.rstrip("/")
    http_client = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        retries=urllib3.Retry(
            total=_RETRIES, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]
        ),
    )
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        http_client=http_client,
    )
