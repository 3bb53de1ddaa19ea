"""Publishing the offering (`offering.py`) into the provider's EDC through the Management API v3.

`publish()` lists assets, policy definitions and contract definitions, plans, and (unless a dry
run) applies the plan: POST to create (409: someone made it meanwhile → PUT), PUT to update,
DELETE to remove (404: already gone; 409: EDC keeps it, e.g. an asset an agreement names; its
offer is withdrawn all the same, and the next publish tries again). Every call has the configured
timeout; no answer, 429 and 5xx are retried three times, anything else is reported as it is.

    PublishError
    ├── ManagementUnavailableError   no answer / 5xx after the retries: try later
    └── ManagementRefusedError       401/403 (the API key), 400 (EDC's validation message)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from provisioner.edc.management import management_http_client
from provisioner.edc.offering import (
    COLLECTIONS,
    CONTEXT,
    Change,
    Entity,
    Existing,
    Kind,
    OfferTarget,
    desired_offering,
    plan,
    read_existing,
)
from workflow_contracts.asset import WorkflowAsset

log = logging.getLogger(__name__)
PAGE = 100


class PublishError(Exception):
    """Base of the publishing errors."""


class ManagementUnavailableError(PublishError):
    """The Management API did not answer usefully."""


class ManagementRefusedError(PublishError):
    """The Management API refused a call for good."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _edc_messages(response: httpx.Response) -> str:
    """EDC answers errors as a list of `{message, type, path, invalidValue}`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, list):
        return "; ".join(str(item.get("message")) for item in body if isinstance(item, dict))
    return str(body)[:300]


class OfferingClient:
    """The Management API calls publishing needs; `x-api-key` when the context wants one."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout_seconds: float) -> None:
        self._client = management_http_client(
            base_url, api_key=api_key, timeout_seconds=timeout_seconds
        )

    def close(self) -> None:
        self._client.close()

    @retry(
        retry=retry_if_exception_type(ManagementUnavailableError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.3, max=3),
        reraise=True,
    )
    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ManagementUnavailableError(
                f"Management API unreachable ({type(error).__name__}) for {method} {path}"
            ) from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise ManagementUnavailableError(f"Management API answered {status} for {path}")
        if status in (401, 403):
            raise ManagementRefusedError(
                f"Management API refused our key ({status}): check"
                " PROVISIONER_EDC_MANAGEMENT_API_KEY against web.http.management.auth.key",
                status,
            )
        return response

    def _refused(self, response: httpx.Response, what: str) -> ManagementRefusedError:
        return ManagementRefusedError(
            f"{what}: EDC answered {response.status_code}: {_edc_messages(response)}",
            response.status_code,
        )

    def list(self, kind: Kind) -> list[dict[str, Any]]:
        path = f"/v3/{COLLECTIONS[kind]}/request"
        documents: list[dict[str, Any]] = []
        while True:
            query = {
                "@context": CONTEXT,
                "@type": "QuerySpec",
                "offset": len(documents),
                "limit": PAGE,
            }
            response = self._call("POST", path, query)
            if response.status_code != 200:
                raise self._refused(response, f"listing {COLLECTIONS[kind]}")
            page = response.json()
            if not isinstance(page, list):
                raise ManagementUnavailableError(f"listing {COLLECTIONS[kind]}: not a JSON list")
            documents += [item for item in page if isinstance(item, dict)]
            if len(page) < PAGE:
                return documents

    def create(self, entity: Entity) -> bool:
        """True when created, False when it exists already (409)."""
        response = self._call("POST", f"/v3/{COLLECTIONS[entity.kind]}", entity.body)
        if response.status_code == 409:
            return False
        if response.status_code != 200:
            raise self._refused(response, f"creating {entity.kind} {entity.id}")
        return True

    def update(self, entity: Entity) -> None:
        collection = COLLECTIONS[entity.kind]
        # Policy definitions take the id in the path; assets and contract definitions in the body.
        path = f"/v3/{collection}/{entity.id}" if entity.kind == "policy" else f"/v3/{collection}"
        response = self._call("PUT", path, entity.body)
        if response.status_code not in (200, 204):
            raise self._refused(response, f"updating {entity.kind} {entity.id}")

    def delete(self, kind: Kind, entity_id: str) -> str | None:
        """None when deleted or already gone; EDC's reason when it keeps the entity (409)."""
        response = self._call("DELETE", f"/v3/{COLLECTIONS[kind]}/{entity_id}")
        if response.status_code in (200, 204, 404):
            return None
        if response.status_code == 409:
            return _edc_messages(response)
        raise self._refused(response, f"deleting {kind} {entity_id}")


@dataclass
class PublishReport:
    changes: list[Change]
    dry_run: bool
    outcomes: dict[str, str] = field(default_factory=dict)  # change description -> note
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        prefix = "would " if self.dry_run else ""
        shown = []
        for change in self.changes:
            text = change.describe()
            if change.action == "keep":
                shown.append(f"unchanged: {text.removeprefix('keep ')}")
                continue
            if change.action == "foreign":
                continue
            note = self.outcomes.get(text)
            shown.append(f"{prefix}{text}" + (f" ({note})" if note else ""))
        return shown + [f"error: {problem}" for problem in self.problems]


def existing_offering(client: OfferingClient) -> list[Existing]:
    found = []
    for kind in COLLECTIONS:
        for document in client.list(kind):
            item = read_existing(kind, document)
            if item is not None:
                found.append(item)
    return found


def publish(
    client: OfferingClient,
    catalog: dict[str, WorkflowAsset],
    target: OfferTarget,
    *,
    dry_run: bool = False,
) -> PublishReport:
    changes = plan(desired_offering(catalog, target), existing_offering(client))
    report = PublishReport(changes, dry_run)
    for change in changes:
        if change.action == "foreign":
            report.problems.append(
                f"{change.describe().removeprefix('foreign ')} exists and was not made by the"
                " provisioner (no managedBy marker): left alone; rename the asset or remove it"
            )
    if dry_run:
        return report
    for change in changes:
        try:
            _apply(client, change, report)
        except ManagementRefusedError as error:
            if error.status in (401, 403):
                raise
            report.problems.append(str(error))
            log.error("EDC offering: %s", error)
    return report


def _apply(client: OfferingClient, change: Change, report: PublishReport) -> None:
    text = change.describe()
    if change.action in ("create", "update"):
        assert change.entity is not None
        if change.action == "create" and client.create(change.entity):
            log.info("EDC offering: %s", text)
            return
        client.update(change.entity)  # an update, or a create that found it made meanwhile
        log.info("EDC offering: %s", text)
    elif change.action == "delete":
        kept = client.delete(change.kind, change.id)
        if kept is not None:
            report.outcomes[text] = f"EDC keeps it: {kept}"
            log.warning("EDC offering: could not %s: %s", text, kept)
        else:
            log.info("EDC offering: %s", text)


class StartupPublisher:
    """`PROVISIONER_EDC_PUBLISH_ON_STARTUP`: publish once in a thread of its own, retrying while
    the Management API is unavailable (EDC may start after us), until it worked or we stop."""

    def __init__(
        self,
        client: OfferingClient,
        catalog: dict[str, WorkflowAsset],
        target: OfferTarget,
        *,
        retry_seconds: float = 5.0,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._target = target
        self._retry_seconds = retry_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edc-publisher", daemon=True)
        self.report: PublishReport | None = None
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.report = publish(self._client, self._catalog, self._target)
            except ManagementUnavailableError as error:
                self.error = str(error)
                log.warning("EDC offering not published yet: %s", error)
                self._stopping.wait(self._retry_seconds)
                continue
            except PublishError as error:
                self.error = str(error)
                log.error("EDC offering not published: %s", error)
                return
            self.error = None if self.report.ok else "; ".join(self.report.problems)
            for problem in self.report.problems:
                log.error("EDC offering: %s", problem)
            log.info("EDC offering published (%d entities checked)", len(self.report.changes))
            return
