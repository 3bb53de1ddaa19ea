"""Env-files behind http(s) hrefs: fetched when their job starts, through the egress policy.

Never inside the execute request (a slow or hostile server cannot hold a request thread, and the
request cannot be used to probe what the API reaches). The job fails with the reason when the
document is refused, unreachable, too large, not UTF-8, or not a valid env-file.
"""

from __future__ import annotations

import httpx

from data_sidecar.egress import EgressPolicy, EgressRefusedError, Resolver, system_resolver
from data_sidecar.egress_http import Deadline, EgressFailedError, guarded_client, read_limited
from data_sidecar.transport import safe_url
from workflow_common.retry import PermanentError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class RemoteEnvFileError(PermanentError):
    """One env-file href could not be read; the message says why, without the URL's query.
    Permanent: the job that needs it fails (the href is read once, at the job's start)."""


class RemoteEnvFiles:
    def __init__(
        self, policy: EgressPolicy, deadline_seconds: float, resolver: Resolver = system_resolver
    ) -> None:
        self._policy = policy
        self._deadline_seconds = deadline_seconds
        self._client = guarded_client(policy, TIMEOUT, resolver)

    def read(self, url: str, limit: int) -> str:
        """The document's text (blocking: call it from a worker thread)."""
        where = f"the env-file at {safe_url(url)}"
        try:
            status, body = read_limited(
                self._client, self._policy, url, limit, Deadline(self._deadline_seconds, TIMEOUT)
            )
        except EgressRefusedError as error:
            raise RemoteEnvFileError(f"{where} is refused: {error}") from error
        except EgressFailedError as error:
            raise RemoteEnvFileError(f"{where} could not be read: {error}") from error
        if not 200 <= status < 300:
            raise RemoteEnvFileError(f"{where} could not be read: HTTP {status}")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RemoteEnvFileError(f"{where} is not UTF-8 text") from error

    def close(self) -> None:
        self._client.close()
