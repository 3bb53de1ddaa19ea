"""Loopback ports for the servers tests and benchmarks start: a socket bound to a free port (the
server is handed the socket, so no one can take the port in between), or just a free port's number
for a server that binds it itself (a subprocess; a short race that the callers accept)."""

from __future__ import annotations

import socket


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
