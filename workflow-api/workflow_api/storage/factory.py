"""Build the ObjectStore that the settings choose: one dict lookup, no plugin loading."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from workflow_api.settings import Settings
from workflow_api.storage.base import ObjectStore
from workflow_api.storage.filesystem import FilesystemStore
from workflow_common.private_files import write_secret_file

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "storage-signing.key"
_SIGNING_KEY_SIZE = 32


def make_store(settings: Settings) -> ObjectStore:
    return _BUILDERS[settings.storage](settings)


def _filesystem_store(settings: Settings) -> ObjectStore:
    if settings.storage_signing_key is not None:  # Settings checked its length
        signing_key = settings.storage_signing_key.get_secret_value().encode()
    else:
        signing_key = load_or_create_signing_key(settings.data_dir / SIGNING_KEY_FILE)
    return FilesystemStore(settings.data_dir / "storage", signing_key, settings.base_url)


def _s3_store(settings: Settings) -> ObjectStore:
    # Imported here: the minio client costs half a second of start-up that filesystem storage
    # (and every consumer's workflow-api on the local deployer) does not need.
    from workflow_api.storage.s3 import S3Store  # noqa: PLC0415
    from workflow_common.s3 import make_s3_client  # noqa: PLC0415

    # Settings guarantees these are set when storage is "s3".
    assert settings.s3_endpoint is not None
    assert settings.s3_access_key is not None
    assert settings.s3_secret_key is not None
    assert settings.s3_bucket is not None
    client = make_s3_client(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )
    return S3Store(client, settings.s3_bucket, settings.s3_prefix)


_BUILDERS: dict[str, Callable[[Settings], ObjectStore]] = {
    "filesystem": _filesystem_store,
    "s3": _s3_store,
}


def load_or_create_signing_key(path: Path) -> bytes:
    """The key stored at `path`; a new random one (mode 0600) if there is none yet.

    A new key is written atomically and only where none exists, so a concurrent or interrupted
    start never leaves a partial key, and the first writer wins.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    if write_secret_file(path, secrets.token_bytes(_SIGNING_KEY_SIZE), if_absent=True):
        log.info("generated a new storage signing key in %s", path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != _SIGNING_KEY_SIZE:
        raise ValueError(f"{path} should hold {_SIGNING_KEY_SIZE} bytes; remove it to regenerate")
    return key
