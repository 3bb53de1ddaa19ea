from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.tokens.signing_key import SigningKey
from workflow_testkit.workflow_api import RunningApi, start_api

ALL_DUMMY_ASSETS = ("dummy", "input-dummy", "echo", "noop")


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def api_factory(tmp_path: Path, signing_key: SigningKey) -> Iterator[Callable[..., RunningApi]]:
    started: list[RunningApi] = []

    def start(name: str = "api", **overrides: Any) -> RunningApi:
        overrides.setdefault("grants", ALL_DUMMY_ASSETS)
        api = start_api(tmp_path / name, signing_key, **overrides)
        started.append(api)
        return api

    yield start
    for api in reversed(started):
        api.stop()


@pytest.fixture
def api(api_factory: Callable[..., RunningApi]) -> RunningApi:
    return api_factory()
