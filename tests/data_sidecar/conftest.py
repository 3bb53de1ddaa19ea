from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_sidecar import TransferPolicy
from tests.data_sidecar.storage_server import FakeStorage, StorageServer


@pytest.fixture
def storage() -> Iterator[FakeStorage]:
    with StorageServer() as running:
        yield running


@pytest.fixture
def policy() -> TransferPolicy:
    """Real retries and timeouts, with waits short enough for a test."""
    return TransferPolicy(
        attempts=3, initial_wait=0.01, max_wait=0.05, connect_timeout=2.0, read_timeout=2.0
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path
