"""The local deployer's ports: each consumer keeps its port across restarts while it is free,
and a port handed out is never given to another consumer before it is released (the socket is
bound by the workflow-api only later, so the system alone cannot say it is taken)."""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger(__name__)


class PortBook:
    """Ports by consumer slug, on one host address."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._ports: dict[str, int] = {}  # slug -> port, from start or adoption until removal
        self._lock = threading.Lock()

    def hold(self, slug: str, port: int) -> None:
        """The consumer's running workflow-api has this port (adopted or supervised)."""
        with self._lock:
            self._ports[slug] = port

    def release(self, slug: str) -> None:
        with self._lock:
            self._ports.pop(slug, None)

    def choose(self, slug: str, preferred: int | None) -> int:
        """`preferred` if it is free; otherwise one the system and this book have not given."""
        with self._lock:
            taken = {port for owner, port in self._ports.items() if owner != slug}
            if preferred is not None and preferred not in taken and self._bindable(preferred):
                port = preferred
            else:
                port = self._ephemeral_port()
                while port in taken:
                    port = self._ephemeral_port()
                if preferred is not None:
                    log.info("slug %s: port %s is taken; moving to %s", slug, preferred, port)
            self._ports[slug] = port
            return port

    def _bindable(self, port: int) -> bool:
        with self._socket() as probe:
            try:
                probe.bind((self._host, port))
            except OSError:
                return False
        return True

    def _ephemeral_port(self) -> int:
        with self._socket() as probe:
            probe.bind((self._host, 0))
            port: int = probe.getsockname()[1]
        return port

    def _socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        return probe


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def probe_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
