"""What the Kubernetes runner keeps of a job besides its state: log, progress line, report.

The log lives in the cluster (the kubelet keeps what containers write) only as long as the pod, so
the runner copies it into storage under the job's log key: the worker's output, preceded by a
failed stage-in's lines (`[stage-in] ...`), followed by the runner's own notes
(`[runner] ...`). Progress and push-out's report travel the other way: the sidecar uploads them
into storage through signed targets (the pod holds no credential; on S3 a presigned POST whose
policy caps the object at `OBJECT_LIMIT_BYTES`), and the runner reads them back through
short-lived signed GET URLs, which works alike for the filesystem store and S3.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from workflow_api.execution.kubernetes import status
from workflow_api.execution.kubernetes.objects import STAGE_IN_CONTAINER, WORKER_CONTAINER
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore, SignedUpload
from workflow_common.kubernetes import ClusterApi, KubernetesApiError
from workflow_common.private_files import private_dir
from workflow_contracts.manifest import PushOutReport

log = logging.getLogger(__name__)

LOG_LIMIT_BYTES = 16 * 1024**2
OBJECT_LIMIT_BYTES = 1024**2
_LOG_PREFIX = re.compile(r"^\S+ \S+ [A-Z]+ \S+: ")  # data-sidecar's "time LEVEL logger: "


class JobArtifacts:
    def __init__(self, api: ClusterApi, store: ObjectStore, log_dir: Path) -> None:
        self._api = api
        self._store = store
        self._log_dir = log_dir
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        private_dir(log_dir)

    def close(self) -> None:
        self._http.close()

    def signed_upload(self, key: str, ttl: timedelta) -> SignedUpload:
        """Where the sidecar uploads a small object (progress, report): at most
        `OBJECT_LIMIT_BYTES`, which is also all the runner reads back."""
        return self._store.signed_upload(key, ttl, OBJECT_LIMIT_BYTES)

    # --- the log ------------------------------------------------------------------------------

    async def save_log(self, job_id: str, pod: Any | None, note: str | None = None) -> str | None:
        """Store the job's log now; returns the last line of a failed stage-in, if any."""
        parts: list[bytes] = []
        stage_in_tail = None
        try:
            if pod is not None:
                stage_in = status.terminated(pod, STAGE_IN_CONTAINER)
                if stage_in is not None and stage_in.exit_code != 0:
                    text = (await self._read(pod, STAGE_IN_CONTAINER) or b"").decode(
                        "utf-8", "replace"
                    )
                    stage_in_tail = _last_line(text)
                    parts += [f"[stage-in] {line}\n".encode() for line in text.splitlines()]
                if status.has_started(pod, WORKER_CONTAINER):
                    worker = await self._read(pod, WORKER_CONTAINER)
                    parts.append(worker if worker is not None else self._last_snapshot(job_id))
        except KubernetesApiError as error:
            parts.append(f"[runner] the log could not be read: {error}\n".encode())
        if note:
            parts.append(f"[runner] {note}\n".encode())
        await asyncio.to_thread(self._store_log, job_id, b"".join(parts))
        return stage_in_tail

    async def _read(self, pod: Any, container: str) -> bytes | None:
        name = pod.metadata.name
        return await asyncio.to_thread(self._api.read_log, name, container, LOG_LIMIT_BYTES)

    def _store_log(self, job_id: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(dir=self._log_dir, delete=False) as handle:
            handle.write(data)
        self._store.put_file(keys.log_key(job_id), Path(handle.name))

    def live_log(self, job_id: str, pod: Any | None) -> Path | None:
        """The worker's log so far, fetched now into a file (blocking: for request threads)."""
        if pod is None or not status.has_started(pod, WORKER_CONTAINER):
            return None
        try:
            data = self._api.read_log(pod.metadata.name, WORKER_CONTAINER, LOG_LIMIT_BYTES)
        except KubernetesApiError as error:
            log.info("job %s: no live log: %s", job_id, error)
            return None
        if data is None:
            return None
        with tempfile.NamedTemporaryFile(dir=self._log_dir, delete=False) as handle:
            handle.write(data)
        path = self._live_log_path(job_id)
        Path(handle.name).replace(path)  # atomic: a response being sent keeps the old file
        return path

    async def snapshot_log(self, job_id: str, pod: Any) -> None:
        """Refresh the copy of a running worker's log: the pod (and the log with it) may be gone
        by the time the job ends (deadline, eviction), and the copy is what is kept then."""
        await asyncio.to_thread(self.live_log, job_id, pod)

    def _last_snapshot(self, job_id: str) -> bytes:
        try:
            data = self._live_log_path(job_id).read_bytes()
        except FileNotFoundError:
            return b"[runner] no worker log\n"
        return data + b"[runner] the worker's pod was gone; its log as last read is shown\n"

    def discard_live_log(self, job_id: str) -> None:
        self._live_log_path(job_id).unlink(missing_ok=True)

    def _live_log_path(self, job_id: str) -> Path:
        return self._log_dir / f"{job_id}.log"

    # --- progress and report ------------------------------------------------------------------

    async def progress_line(self, job_id: str) -> str | None:
        data = await asyncio.to_thread(self._fetch, keys.progress_key(job_id))
        line = (data or b"").decode("utf-8", "replace").strip()
        return line or None

    async def report(self, job_id: str) -> PushOutReport | None:
        data = await asyncio.to_thread(self._fetch, keys.report_key(job_id))
        if data is None:
            return None
        try:
            return PushOutReport.model_validate_json(data)
        except ValueError:
            log.warning("job %s: the push-out report is not valid", job_id)
            return None

    def _fetch(self, key: str) -> bytes | None:
        """A small object through a short-lived signed URL; None when it is not there."""
        url = self._store.signed_url("GET", key, timedelta(minutes=1))
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    return None
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > OBJECT_LIMIT_BYTES:
                        return None
                return body
        except httpx.HTTPError as error:
            log.info("object %s not read: %s", key, type(error).__name__)
            return None


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _LOG_PREFIX.sub("", lines[-1]) if lines else None
