"""The `kubernetes_cluster` fixture: one KWOK cluster (real control plane, fake nodes) per session.

The binaries come from `.ci/build-kubernetes.sh` (`WORKFLOW_K8S_CACHE`, `WORKFLOW_K8S_VERSION`).
Without them the tests are skipped, or fail when `WORKFLOW_TESTS_REQUIRE_KUBERNETES=1` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from workflow_testkit.kubernetes.cluster import (
    ClusterHandle,
    default_cache_dir,
    kwok_cluster,
    missing_binaries,
)


@pytest.fixture(scope="session")
def kubernetes_cluster() -> Iterator[ClusterHandle]:
    cache_dir = default_cache_dir()
    missing = missing_binaries(cache_dir)
    if missing:
        message = (
            f"Kubernetes binaries missing in {cache_dir / 'bin'}: {', '.join(missing)}; "
            "build them with .ci/build-kubernetes.sh"
        )
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_KUBERNETES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with kwok_cluster(cache_dir, name="wf-test") as cluster:
        yield cluster
