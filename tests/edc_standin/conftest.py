"""Fixtures of the stand-in's own tests.

The root conftest registers `workflow_testkit.edc_standin.fixture` as a plugin; importing the
fixtures here keeps this directory's tests runnable on their own as well.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from workflow_testkit.edc_standin.fixture import EdcStandIn, edc_standin, edc_standin_server
from workflow_testkit.edc_standin.model import World

__all__ = ["client", "edc_standin", "edc_standin_server", "world"]


@pytest.fixture
def client(edc_standin: EdcStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edc_standin.base_url, timeout=5, verify=False) as http:
        yield http


@pytest.fixture
def world(edc_standin: EdcStandIn) -> World:
    return edc_standin.world
