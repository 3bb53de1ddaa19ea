"""An ingress controller for the test cluster, in Python: routes by the cluster's Ingress objects.

KWOK runs no ingress controller, and the pods it reports Running run nowhere. A test that plays
the kubelet of a workflow-api pod runs it as a local process and registers that process here as
the endpoint of the pod's Service (`backends[(namespace, service)]`). Requests are then routed as
an ingress controller without any rewrite annotation routes them:

- the Ingress objects are read from the API server for every request, so a route exists exactly
  as long as its Ingress does;
- a rule with a host matches that host only (the request's Host without its port); paths of type
  Prefix match whole path elements; the longest matching prefix wins;
- the request is forwarded to the Service's endpoint with its path unchanged
  ("/consumers/x/jobs": the workflow-api serves under its public URL's path); the answer,
  redirects included, goes back unchanged;
- nothing matches: 404; the Service has no endpoint (yet): 503.

What it does not do: TLS, ingress classes, default backends, Exact or regex paths, streaming (a
request's and an answer's body are held in memory: fine for the small documents of the tests).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from kubernetes import client

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
)
_SET_HERE = frozenset({"content-length", "content-encoding", "date", "server"})
_TIMEOUT_SECONDS = 60


def _prefix_matches(prefix: str, path: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


class FakeIngress:
    def __init__(self, api: client.ApiClient) -> None:
        self._networking = client.NetworkingV1Api(api)
        self.backends: dict[tuple[str, str], str] = {}  # (namespace, service) -> base URL
        self._http = httpx.Client(timeout=_TIMEOUT_SECONDS, trust_env=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="fake-ingress"
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def route(self, host: str, path: str) -> tuple[str, str, str] | None:
        """(namespace, service, path left after the prefix) of the best match, or None."""
        best: tuple[int, str, str, str] | None = None
        ingresses = self._networking.list_ingress_for_all_namespaces(_request_timeout=10).items
        for ingress in ingresses:
            for rule in ingress.spec.rules or []:
                if (rule.host and rule.host != host) or rule.http is None:
                    continue
                for candidate in rule.http.paths:
                    if candidate.path_type != "Prefix" or candidate.backend.service is None:
                        continue
                    prefix = (candidate.path or "/").rstrip("/")
                    if not _prefix_matches(prefix, path):
                        continue
                    if best is None or len(prefix) > best[0]:
                        namespace = ingress.metadata.namespace
                        best = (len(prefix), namespace, candidate.backend.service.name, path)
        return None if best is None else best[1:]

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path, _, query = target.partition("?")
        host = next((value for name, value in headers if name.lower() == "host"), "")
        found = self.route(host.rsplit(":", 1)[0], path)
        if found is None:
            return 404, [("Content-Type", "text/plain")], b"no Ingress routes this path\n"
        namespace, service, rest = found
        backend = self.backends.get((namespace, service))
        if backend is None:
            message = f"service {namespace}/{service} has no endpoint\n".encode()
            return 503, [("Content-Type", "text/plain")], message
        forwarded = [
            (name, value)
            for name, value in headers
            if name.lower() not in HOP_BY_HOP | {"content-length"}
        ]
        url = f"{backend}{rest}" + (f"?{query}" if query else "")
        try:
            answer = self._http.request(method, url, headers=forwarded, content=body)
        except httpx.HTTPError as error:
            return 502, [("Content-Type", "text/plain")], f"{type(error).__name__}\n".encode()
        kept = [
            (name, value)
            for name, value in answer.headers.multi_items()
            if name.lower() not in HOP_BY_HOP | _SET_HERE
        ]
        return answer.status_code, kept, answer.content


def _handler(ingress: FakeIngress) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = list(self.headers.items())
            status, answer_headers, content = ingress.forward(
                self.command, self.path, headers, body
            )
            self.send_response(status)
            for name, value in answer_headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _proxy

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("fake ingress: " + format, *args)

    return Handler


@contextlib.contextmanager
def fake_ingress(api: client.ApiClient) -> Iterator[FakeIngress]:
    ingress = FakeIngress(api)
    ingress.start()
    try:
        yield ingress
    finally:
        ingress.stop()
