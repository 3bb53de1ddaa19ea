"""A job's own copies of its text inputs: inline env-files, and env-files read from a URL.

Both are stored under the job's prefix (`jobs/<job>/inputs/<input>`), counted in the quota, and
staged in from there like an upload, so the worker sees exactly the bytes that were checked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from workflow_api.errors import InvalidInputError
from workflow_api.execution.env_files import RemoteEnvFileError, RemoteEnvFiles
from workflow_api.execution.job_storage import JobStorage
from workflow_api.inputs import Launch, env_file_variables
from workflow_api.quota import QuotaExceededError
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_common.retry import PermanentError
from workflow_contracts.asset import WorkflowAsset


class JobInputs:
    def __init__(self, store: ObjectStore, storage: JobStorage, env_files: RemoteEnvFiles) -> None:
        self._store = store
        self._storage = storage
        self._env_files = env_files

    def close(self) -> None:
        self._env_files.close()

    def store_inline(self, job_id: str, launch: Launch) -> None:
        """Store the env-files given inline in the request (raises `QuotaExceededError`)."""
        for source in launch.files:
            if source.inline_text is not None:
                self._store_text(job_id, source.id, source.inline_text)

    def read_env_files(self, job_id: str, asset: WorkflowAsset, launch: Launch) -> Launch:
        """Fetch the env-files given as http(s) hrefs, check them as the request checks inline
        ones, and keep what was read as the job's own copy (the worker sees those bytes, not a
        second download). Returns the launch with those files inline; the caller persists it.
        Raises `PermanentError` when one cannot be read, is no valid env-file or does not fit
        into the quota."""
        files, env = [], dict(launch.env)
        for source in launch.files:
            if not source.fetched_at_launch:
                files.append(source)
                continue
            item = asset.input(source.id)
            assert item is not None and source.url is not None
            try:
                text = self._env_files.read(source.url, source.max_size)
            except RemoteEnvFileError as error:
                raise RemoteEnvFileError(f"input {source.id!r}: {error}") from error
            try:
                env.update(env_file_variables(item, text))
            except InvalidInputError as error:
                raise PermanentError(str(error)) from error
            try:
                self._store_text(job_id, source.id, text)
            except QuotaExceededError as error:
                raise PermanentError(f"input {source.id!r}: {error.detail}") from error
            files.append(source.model_copy(update={"url": None, "inline_text": text}))
        return launch.model_copy(update={"files": files, "env": env})

    def _store_text(self, job_id: str, input_id: str, text: str) -> None:
        key = keys.inline_input_key(job_id, input_id)
        data = text.encode("utf-8")
        self._storage.store_inline(job_id, key, len(data))
        with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
            handle.write(data)
        self._store.put_file(key, Path(handle.name))
        self._storage.record(job_id, key, len(data))
