"""Record what real EDC connectors send and answer, into `tests/edc_standin/recorded/<version>/`.

    python -m tests.edc.record_exchanges 0.18.0 0.15.1

Starts a provider and a consumer of each version on loopback (the runtimes must be built), a
recording HTTP server in place of the provisioner, publishes the dummy catalog, negotiates a
contract for `echo`, starts an `HttpData-PULL` transfer, answers the provision request with the
callback the provisioner would send, terminates the transfer and records the deprovision request.
Each fixture is `{"request": ..., "status": ..., "headers": ..., "body": ...}`; the stand-in's
tests compare its answers with them (`tests/edc_standin/test_recorded.py`). The keys in them are
the repository's throw-away test keys, nothing secret.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from provisioner.edc.offering import OfferTarget
from provisioner.edc.publisher import OfferingClient, publish
from provisioner.edc.wire import endpoint_address
from workflow_contracts.asset import load_catalog
from workflow_testkit.edc.connectors import Connector
from workflow_testkit.edc.dataspace import Connection
from workflow_testkit.edc_standin import RECORDED
from workflow_testkit.edc_standin.fixture import serve_in_thread
from workflow_testkit.workflow_api import DUMMY_ASSETS

EDC = "https://w3id.org/edc/v0.0.1/ns/"
ODRL = "http://www.w3.org/ns/odrl/2/"
CONTEXT = {"@vocab": EDC, "edc": EDC, "odrl": ODRL}
KEPT_HEADERS = {"content-type", "user-agent", "x-api-key", "accept-encoding", "content-length"}


class Recorder:
    """Stands where the provisioner would: records every request and answers 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    async def handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items() if k in KEPT_HEADERS},
            "body": json.loads(raw) if raw else None,
        }
        with self.changed:
            self.requests.append(entry)
            self.changed.notify_all()
        return JSONResponse({"status": "recorded"})

    def wait_for(self, kind: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [r for r in self.requests if (r["body"] or {}).get("type") == kind]
                if found:
                    return found[0]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {kind} request within {timeout} s")
                self.changed.wait(0.5)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self.handle, methods=["GET", "POST", "PUT", "DELETE"])]
        )


class Session:
    def __init__(self, connector: Connector, out: Path) -> None:
        self.connector = connector
        self.out = out
        self.client = connector.management()

    def call(
        self,
        name: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
    ) -> httpx.Response:
        """`key`: an x-api-key instead of the connector's."""
        headers = {} if key is None else {"x-api-key": key}
        response = self.client.request(method, path, json=body, headers=headers)
        if name:
            document = response.json() if response.content else None
            record = {
                "request": {"method": method, "path": path, "body": body},
                "status": response.status_code,
                "headers": {"content-type": response.headers.get("content-type")},
                "body": document,
            }
            (self.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        return response


def record(version: str, work: Path) -> None:
    out = RECORDED / version
    out.mkdir(parents=True, exist_ok=True)
    recorder = Recorder()
    with serve_in_thread(recorder.app()) as recorder_url:
        legacy = version == "0.15.1"
        overrides = {"provisioner.http.entries.workflow.endpoint": f"{recorder_url}/edc/provision"}
        provider = Connector(version, "provider", work / "provider", overrides if legacy else {})
        consumer = Connector(version, "consumer", work / "consumer")
        provider.start()
        consumer.start()
        try:
            _record_flow(version, provider, consumer, recorder, recorder_url, out)
        finally:
            sys.stderr.write(f"provider log (kept until exit): {provider.log_file}\n")
            provider.stop()
            consumer.stop()


def _record_flow(
    version: str,
    provider: Connector,
    consumer: Connector,
    recorder: Recorder,
    recorder_url: str,
    out: Path,
) -> None:
    legacy = version == "0.15.1"
    target = OfferTarget(flavour="legacy" if legacy else "dataplane", public_url=recorder_url)
    client = OfferingClient(provider.management_url, api_key=provider.api_key, timeout_seconds=20)
    report = publish(client, load_catalog(DUMMY_ASSETS), target)
    client.close()
    assert report.ok, report.problems
    edc = Session(provider, out)
    edc.call("asset_get", "GET", "/v3/assets/echo")
    query = {"@context": CONTEXT, "@type": "QuerySpec", "offset": 0, "limit": 2}
    edc.call("asset_query", "POST", "/v3/assets/request", query)
    edc.call("asset_get_unknown", "GET", "/v3/assets/no-such-asset")
    edc.call("asset_get_wrong_key", "GET", "/v3/assets/echo", key="wrong")
    edc.call("policydefinition_get", "GET", "/v3/policydefinitions/echo-contract-policy")
    edc.call("policydefinition_get_open", "GET", "/v3/policydefinitions/echo-access-policy")
    edc.call("policydefinition_query", "POST", "/v3/policydefinitions/request", query)
    edc.call("contractdefinition_get", "GET", "/v3/contractdefinitions/echo-offer")
    edc.call("contractdefinition_query", "POST", "/v3/contractdefinitions/request", query)
    duplicate = {
        "@context": CONTEXT,
        "@id": "echo",
        "@type": "Asset",
        "properties": {},
        "dataAddress": {"type": "HttpData", "baseUrl": "http://127.0.0.1:9/"},
    }
    edc.call("asset_create_duplicate", "POST", "/v3/assets", duplicate)
    made = dict(duplicate, **{"@id": "recorded-extra"})
    edc.call("asset_create", "POST", "/v3/assets", made)
    edc.call("asset_update", "PUT", "/v3/assets", made)
    edc.call("asset_delete", "DELETE", "/v3/assets/recorded-extra")
    edc.call(
        "policydefinition_delete_referenced", "DELETE", "/v3/policydefinitions/echo-access-policy"
    )

    buyer = Session(consumer, out)
    connection = Connection(version, provider, consumer)
    catalog_record = {
        "request": {"method": "POST", "path": "/v3/catalog/request"},
        "status": 200,
        "body": connection.catalog(),
    }
    (out / "consumer_catalog.json").write_text(json.dumps(catalog_record, indent=2) + "\n")
    transfer = connection.transfer(connection.negotiate("echo"))
    provision = recorder.wait_for("provision")
    (out / "provision_request.json").write_text(json.dumps(provision, indent=2) + "\n")
    body = provision["body"]
    flow = body.get("flowId") or body.get("transferProcessId")
    edc.call("transferprocess_get", "GET", f"/v3/transferprocesses/{flow}")
    edc.call("transferprocess_get_unknown", "GET", "/v3/transferprocesses/no-such-process")
    contract_id = edc.call(None, "GET", f"/v3/transferprocesses/{flow}").json()["contractId"]
    edc.call("contractagreement_get", "GET", f"/v3/contractagreements/{contract_id}")
    edc.call("contractagreement_get_unknown", "GET", "/v3/contractagreements/no-such-agreement")
    address = endpoint_address("http://127.0.0.1:9/workflow-api/", "recorded-token")
    if legacy:
        callback = f"{body['callbackAddress']}/{flow}/provision"
        answer = httpx.post(
            callback,
            json={
                "edctype": "dataspaceconnector:provisioner-callback-request",
                "resourceDefinitionId": body["resourceDefinitionId"],
                "assetId": "echo",
                "resourceName": f"wf-{flow}",
                "contentDataAddress": address,
                "apiKeyJwt": "unused",
                "hasToken": False,
            },
            headers={"x-api-key": provider.api_key},
            timeout=20,
        )
        without_key = httpx.post(callback, json={}, timeout=20)
        (out / "legacy_callback_without_key.json").write_text(
            json.dumps({"status": without_key.status_code, "body": without_key.text}) + "\n"
        )
    else:
        callback = f"{body['callbackAddress']}/{flow}/{body['provisionResourceId']}/provision"
        answer = httpx.post(callback, json={"dataAddress": address}, timeout=20)
    (out / "provision_callback_answer.json").write_text(
        json.dumps({"status": answer.status_code, "body": answer.text}) + "\n"
    )
    time.sleep(3)
    edc.call("transferprocess_get_after_callback", "GET", f"/v3/transferprocesses/{flow}")
    buyer.call("consumer_transferprocess_get", "GET", f"/v3/transferprocesses/{transfer}")
    edc.call(
        "transferprocess_terminate",
        "POST",
        f"/v3/transferprocesses/{flow}/terminate",
        {"@context": CONTEXT, "@type": "TerminateTransfer", "reason": "recorded"},
    )
    try:
        deprovision = recorder.wait_for("deprovision", timeout=40)
        (out / "deprovision_request.json").write_text(json.dumps(deprovision, indent=2) + "\n")
    except TimeoutError:
        (out / "deprovision_request.json").write_text('{"never": "sent within 40 s"}\n')
    edc.call("transferprocess_get_terminated", "GET", f"/v3/transferprocesses/{flow}")


def main(versions: list[str]) -> None:
    for version in versions:
        with tempfile.TemporaryDirectory() as work:
            record(version, Path(work))
        sys.stderr.write(f"recorded {version} into {RECORDED / version}\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["0.18.0", "0.15.1"])
