"""Follow: the sidecar beside a running worker (Kubernetes), push-out when it is told to stop.

While the worker runs, the latest valid line of its progress file is PUT to the manifest's
`progress_url` (or POSTed with `progress_form`) whenever it changes (one attempt per change,
failures only logged: progress is a courtesy, the job must not suffer for it). When `stop` is
set (the CLI sets it on SIGTERM, which the kubelet sends to a native sidecar once the worker
container has ended, for whatever reason: exit, crash, OOM kill), the last progress is relayed and
push-out runs: outputs and report; the log is not ours to push, the job runner reads it from the
cluster.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx

from data_sidecar.push_out import PushOutOutcome, run_push_out
from data_sidecar.transport import TransferPolicy, check_status, client_for, describe, safe_url
from workflow_contracts.manifest import JobManifest
from workflow_contracts.workspace import parse_progress_line

log = logging.getLogger(__name__)

TAIL_BYTES = 4096  # progress lines are short; only the last one matters
PROGRESS_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def latest_progress_line(path: Path) -> str | None:
    """The last complete line of `path` that is a valid progress line, or None."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return None
    complete, _, _ = tail.rpartition(b"\n")
    for line in reversed(complete.decode("utf-8", "replace").splitlines()):
        if parse_progress_line(line) is not None:
            return line.strip()
    return None


class ProgressRelay:
    """PUTs the latest progress line when it changed since the last successful PUT."""

    def __init__(self, manifest: JobManifest, progress_file: Path) -> None:
        self._url = manifest.progress_url
        self._form = manifest.progress_form
        self._job_id = manifest.job_id
        self._progress_file = progress_file
        self._sent: str | None = None

    def relay(self, http: httpx.Client) -> None:
        if self._url is None:
            return
        line = latest_progress_line(self._progress_file)
        if line is None or line == self._sent:
            return
        try:
            if self._form is None:
                response = http.put(self._url, content=line.encode(), timeout=PROGRESS_TIMEOUT)
            else:  # a presigned POST whose policy bounds the object's size
                files = {"file": ("progress.txt", line.encode(), "text/plain")}
                response = http.post(
                    self._url, data=self._form, files=files, timeout=PROGRESS_TIMEOUT
                )
            check_status(response, "PUT", self._url)
        except Exception as error:  # progress is best effort, never fatal
            log.warning(
                "job %s: progress not relayed to %s: %s",
                self._job_id,
                safe_url(self._url),
                describe(error, self._url),
            )
            return
        self._sent = line


def follow(
    manifest: JobManifest,
    workspace: Path,
    progress_file: Path,
    stop: threading.Event,
    *,
    interval: float = 2.0,
    policy: TransferPolicy | None = None,
    client: httpx.Client | None = None,
) -> PushOutOutcome:
    """Relay progress every `interval` seconds until `stop` is set, then push out."""
    policy = policy or TransferPolicy()
    relay = ProgressRelay(manifest, progress_file)
    with client_for(client, policy) as http:
        while not stop.wait(interval):
            relay.relay(http)
        log.info("job %s: the worker has ended; pushing out", manifest.job_id)
        relay.relay(http)
        return run_push_out(manifest, workspace, None, http, policy=policy)
