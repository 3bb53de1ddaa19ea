"""The README's "Try it with Docker" walk-through as a program: grant, credentials, job, teardown.

    python tests/shipping/walkthrough.py <provisioner base URL> <admin token>

Exits 0 and prints one JSON line with what it saw, or exits 1 with the step that failed. It is
what the docker-compose stack's `client` container is for; the tests run it against the
provisioner image's own command in a private network namespace (test_entrypoints.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def eventually(what: str, attempt: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = attempt()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s: {what}")
        time.sleep(0.2)


def main(base: str, admin_token: str) -> dict[str, Any]:
    admin = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
    )
    grant = admin.post("/admin/grants", json={"consumer_id": "alice", "asset_id": "echo"})
    grant.raise_for_status()
    secret = grant.json()["secret"]

    def credentials() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{base}/credentials", headers={"Authorization": f"Bearer {secret}"}, timeout=10
        )
        return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]

    found = eventually("alice's credentials", credentials)
    api = httpx.Client(
        base_url=found["endpoint"],
        headers={"Authorization": f"Bearer {found['token']}"},
        timeout=30,
        follow_redirects=True,
    )
    processes = [p["id"] for p in api.get("/processes").raise_for_status().json()["processes"]]
    started = api.post("/processes/echo/execution", json={"inputs": {"message": "hello"}})
    started.raise_for_status()
    job_id = started.json()["jobID"]

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/jobs/{job_id}").raise_for_status().json()
        return status if status["status"] in {"successful", "failed", "dismissed"} else None

    status = eventually(f"job {job_id}", finished)
    result = api.get(f"/jobs/{job_id}/results/echo")
    admin.delete("/admin/consumers/alice").raise_for_status()

    def removed() -> bool | None:
        consumers = admin.get("/admin/consumers").raise_for_status().json()["consumers"]
        return True if all(c["state"] == "removed" for c in consumers) else None

    eventually("alice removed", removed)
    return {
        "endpoint": found["endpoint"],
        "processes": processes,
        "job_status": status["status"],
        "result_status": result.status_code,
        "result": result.text,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
