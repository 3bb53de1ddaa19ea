"""The stand-in EDC's HTTP face: a Starlette app wrapped in a recorder.

Management context `/management`: `GET v3/transferprocesses/{id}`, `GET v3/contractagreements/{id}`,
`POST v3/transferprocesses/{id}/terminate`, the offering (`catalog`: assets, policy and contract
definitions) and the legacy callbacks `POST callback/{id}/provision`
and `.../deprovision`. Provision context `/provisioning`: the data-plane callbacks
`POST {flowId}/{provisionResourceId}/provision` and `.../deprovision`.

The recorder (pure ASGI) stores every request with the status answered and applies the
world's injected faults (status, delay, dropped connection) and its Management API outage.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_testkit.edc_standin import catalog, commands, validation, wire
from workflow_testkit.edc_standin.entities import Exchange, Fault
from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.policy import EDC_NAMESPACE
from workflow_testkit.edc_standin.validation import Rejected, authenticate

MANAGEMENT_CONTEXT_URL = "https://w3id.org/edc/connector/management/v0.0.1"
_LEGACY_CALLBACK = re.compile(r"^/management/callback/([^/]+)/(provision|deprovision)$")
_DATAPLANE_CALLBACK = re.compile(r"^/provisioning/([^/]+)/([^/]+)/(provision|deprovision)$")


def _respond(answer: commands.Answer | Rejected) -> Response:
    if answer.body is None:
        return Response(status_code=answer.status)
    if answer.text:
        return PlainTextResponse(str(answer.body), answer.status)
    return JSONResponse(answer.body, answer.status)


def terminate_reason(body: Any) -> str | None:
    """`reason` after JSON-LD expansion: the EDC IRI, or a short/prefixed key the body's
    `@context` maps to it (EDC drops keys no context explains)."""
    if not isinstance(body, dict):
        return None
    context = body.get("@context")
    contexts = context if isinstance(context, list) else [context]
    vocab = any(
        c == MANAGEMENT_CONTEXT_URL or (isinstance(c, dict) and c.get("@vocab") == EDC_NAMESPACE)
        for c in contexts
    )
    prefix = any(isinstance(c, dict) and c.get("edc") == EDC_NAMESPACE for c in contexts)
    keys = [EDC_NAMESPACE + "reason"] + ["reason"] * vocab + ["edc:reason"] * prefix
    value = next((body[key] for key in keys if key in body), None)
    if isinstance(value, dict):
        value = value.get("@value")
    return value if isinstance(value, str) and value.strip() else None


class _Handlers:
    """Route handlers; the recorder puts the world of the moment into `request.state.world`."""

    async def get_transfer_process(self, request: Request) -> Response:
        world: World = request.state.world
        authenticate(request.headers, world.management_api_key)
        process = world.transfer_processes.get(request.path_params["id"])
        if process is None:
            return JSONResponse(
                wire.not_found_body("TransferProcess", request.path_params["id"]), 404
            )
        with world.lock:
            flow = world.data_flows.get(process.id)
            provisioned = flow.provisioned_data_address() if flow else None
            destination = (
                {key.removeprefix(EDC_NAMESPACE): value for key, value in provisioned.items()}
                if provisioned
                else None
            )
            body = wire.transfer_process_json(
                process, version=world.edc_version, data_destination=destination
            )
            return JSONResponse(body)

    async def get_agreement(self, request: Request) -> Response:
        world: World = request.state.world
        authenticate(request.headers, world.management_api_key)
        agreement = world.agreements.get(request.path_params["id"])
        if agreement is None:
            return JSONResponse(
                wire.not_found_body("ContractAgreement", request.path_params["id"]), 404
            )
        body = wire.contract_agreement_json(
            agreement, permission_as_array=world.permission_as_array, version=world.edc_version
        )
        return JSONResponse(body)

    async def terminate(self, request: Request) -> Response:
        world: World = request.state.world
        validation.check_content_type(request.headers.get("content-type"))
        authenticate(request.headers, world.management_api_key)
        reason = terminate_reason(validation.read_json(await request.body()))
        if reason is None:
            path = EDC_NAMESPACE + "reason"
            message = f"mandatory value '{path}' is missing or it is blank"
            return _respond(Rejected(400, wire.error_body(message, "ValidationFailure", path=path)))
        return _respond(commands.terminate(world, request.path_params["id"], reason))

    async def legacy_provision(self, request: Request) -> Response:
        world: World = request.state.world
        validation.check_content_type(request.headers.get("content-type"))
        authenticate(request.headers, world.management_api_key)
        callback = validation.parse_provisioner_callback(await request.body())
        return _respond(commands.provision_callback(world, request.path_params["id"], callback))

    async def legacy_deprovision(self, request: Request) -> Response:
        world: World = request.state.world
        validation.check_content_type(request.headers.get("content-type"))
        authenticate(request.headers, world.management_api_key)
        body = validation.parse_deprovisioned_resource(await request.body())
        return _respond(commands.deprovision_callback(world, request.path_params["id"], body))

    async def dataplane_provision(self, request: Request) -> Response:
        world: World = request.state.world
        validation.check_content_type(request.headers.get("content-type"))
        authenticate(request.headers, world.provisioning_api_key)
        address = validation.parse_dataplane_provision(await request.body())
        flow, resource = request.path_params["flow"], request.path_params["resource"]
        return _respond(commands.dataplane_callback(world, "provision", flow, resource, address))

    async def dataplane_deprovision(self, request: Request) -> Response:
        world: World = request.state.world
        authenticate(request.headers, world.provisioning_api_key)  # the body is ignored
        flow, resource = request.path_params["flow"], request.path_params["resource"]
        return _respond(commands.dataplane_callback(world, "deprovision", flow, resource))


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return _respond(exc)


def create_app(world: World | Callable[[], World]) -> ASGIApp:
    """The stand-in app for `world`, or for whatever world `world()` returns per request."""
    handlers = _Handlers()
    management = "/management/v3"
    app = Starlette(
        routes=[
            Route(
                f"{management}/transferprocesses/{{id}}",
                handlers.get_transfer_process,
                methods=["GET"],
            ),
            Route(
                f"{management}/transferprocesses/{{id}}/terminate",
                handlers.terminate,
                methods=["POST"],
            ),
            Route(
                f"{management}/contractagreements/{{id}}", handlers.get_agreement, methods=["GET"]
            ),
            Route(
                "/management/callback/{id}/provision", handlers.legacy_provision, methods=["POST"]
            ),
            Route(
                "/management/callback/{id}/deprovision",
                handlers.legacy_deprovision,
                methods=["POST"],
            ),
            Route(
                "/provisioning/{flow}/{resource}/provision",
                handlers.dataplane_provision,
                methods=["POST"],
            ),
            Route(
                "/provisioning/{flow}/{resource}/deprovision",
                handlers.dataplane_deprovision,
                methods=["POST"],
            ),
            *catalog.ROUTES,
        ],
        exception_handlers={Rejected: _rejected},
    )
    return _Recorder(app, world)


class _Recorder:
    def __init__(self, app: ASGIApp, world: World | Callable[[], World]) -> None:
        self.app = app
        self.current_world: Callable[[], World] = world if callable(world) else lambda: world

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        world = self.current_world()
        scope.setdefault("state", {})["world"] = world
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        route = _route(scope["path"])
        fault = world.take_fault(route["channel"]) if route["channel"] != "other" else None
        outage = world.management_outage if route["channel"] == "management" else None
        if outage is not None:
            fault = Fault(status=outage)
        statuses: list[int] = []
        held: list[Message] = []  # a delayed answer to a request already applied
        hold_answer = fault is not None and bool(fault.delay) and fault.after_processing

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            if hold_answer:
                held.append(message)
            elif fault is None or not fault.drop:
                await send(message)

        fault_name = None
        if fault is not None and fault.delay and not hold_answer:
            await asyncio.sleep(fault.delay)
            fault_name = "delay"
        if fault is not None and fault.status is not None:
            fault_name = "status"
            await PlainTextResponse("injected failure", fault.status)(scope, replay, capture)
        elif fault is not None and fault.drop:
            fault_name = "drop-after-processing" if fault.after_processing else "drop"
            if fault.after_processing:
                await self.app(scope, replay, capture)
            statuses = []
            # Start a response that promises a body, then end: uvicorn closes the connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"64")],
                }
            )
        else:
            await self.app(scope, replay, capture)
            if hold_answer:
                assert fault is not None
                fault_name = "delay-after-processing"
                await asyncio.sleep(fault.delay)
                for message in held:
                    await send(message)
        world.record(
            Exchange(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                },
                body=_parse(raw),
                raw_body=raw,
                status=statuses[0] if statuses else None,
                fault=fault_name,
                **route,
            )
        )


def _route(path: str) -> dict[str, Any]:
    if match := _LEGACY_CALLBACK.match(path):
        return {"channel": "callback", "flavour": "legacy", "entity_id": match[1], "kind": match[2]}
    if match := _DATAPLANE_CALLBACK.match(path):
        return {
            "channel": "callback",
            "flavour": "dataplane",
            "entity_id": match[1],
            "resource_id": match[2],
            "kind": match[3],
        }
    if path.startswith("/management/"):
        return {"channel": "management"}
    return {"channel": "other"}


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")
