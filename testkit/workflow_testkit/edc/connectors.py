"""Running one real EDC connector (built by .ci/build-edc.sh) on loopback, stopped by its pid.

The repository's `edc-config/connectors/<role>-<version>.properties` is copied with overrides
appended (java.util.Properties keeps the last value of a key): every port a free one, URLs to
match, a fresh Management API key, fast state machines. All stores are in memory, so every start is
a fresh connector. The log stays in the connector's directory (pytest keeps it on failure).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from workflow_testkit.edc.runtimes import EDC_CONFIG, require_edc_runtime
from workflow_testkit.ports import free_port

MAIN_CLASS = "org.eclipse.edc.boot.system.runtime.BaseRuntime"
JAVA = ["java", "-Xmx320m", "-XX:TieredStopAtLevel=1"]  # C1 only: starts faster on 2 cores
EDC = "https://w3id.org/edc/v0.0.1/ns/"
DSP_PROTOCOL = "dataspace-protocol-http:2025-1"
CONTEXTS = ["", "control.", "management.", "protocol.", "provision."]
# Iteration waits of 50 ms instead of 1 s (a transfer takes ~1 s instead of ~10 s). 0.18.0 refuses
# to boot with the 0.15.1 negotiation keys (".consumer"/".provider" were merged).
FAST_MACHINES = ["transfer", "dataplane", "data.plane.selector"]
FAST_NEGOTIATION = {"0.15.1": ["negotiation.consumer", "negotiation.provider"]}


def fast_state_machines(version: str) -> dict[str, str]:
    machines = FAST_MACHINES + FAST_NEGOTIATION.get(version, ["negotiation"])
    return {f"edc.{name}.state-machine.iteration-wait-millis": "50" for name in machines}


class PortTakenError(RuntimeError):
    """EDC could not bind one of its ports."""


@dataclass
class Connector:
    version: str
    role: str  # provider | consumer
    directory: Path
    extra: dict[str, str] = field(default_factory=dict)
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    def __post_init__(self) -> None:
        self._pick_ports()

    def _pick_ports(self) -> None:
        contexts = CONTEXTS + (["signaling."] if self.version != "0.15.1" else [])
        if self.version == "0.15.1":
            # our 0.15.1 extension opens its public proxy context in every role, by default on
            # port 8185: a second connector on the machine could not bind it
            contexts.append("public.")
        self.ports = {context.rstrip(".") or "default": free_port() for context in contexts}

    def url(self, context: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[context]}{path}"

    @property
    def management_url(self) -> str:
        return self.url("management", "/management")

    @property
    def dsp_url(self) -> str:
        """The counter-party address of this connector's DSP 2025-1 endpoint."""
        return self.url("protocol", "/protocol/2025-1")

    @property
    def public_url(self) -> str:
        return self.url("public", "/public")

    @property
    def log_file(self) -> Path:
        return self.directory / "connector.log"

    def properties(self) -> dict[str, str]:
        values = {
            f"web.http.{context}port": str(self.ports[context.rstrip(".") or "default"])
            for context in [*CONTEXTS, "signaling.", "public."]
            if (context.rstrip(".") or "default") in self.ports
        }
        values |= {
            "web.http.management.auth.key": self.api_key,
            "edc.management.endpoint": self.management_url,
            "edc.dsp.callback.address": self.url("protocol", "/protocol"),
            "edc.control.endpoint": self.url("control", "/control"),
            "edc.dataplane.provision.http.endpoint": self.url("provision", "/provisioning"),
            **fast_state_machines(self.version),
        }
        if "public" in self.ports:
            values["workflow.proxy.public.endpoint"] = self.public_url
        return values | self.extra

    def start(self, timeout: float = 120.0) -> None:
        """Free ports are picked before EDC binds them; another process may take one in between,
        so a start that fails with "Address already in use" is tried again with new ports."""
        for _ in range(2):
            try:
                self._start(timeout)
                return
            except PortTakenError:
                self._pick_ports()
        self._start(timeout)

    def _start(self, timeout: float) -> None:
        lib = require_edc_runtime(self.version)
        self.directory.mkdir(parents=True, exist_ok=True)
        source = EDC_CONFIG / "connectors" / f"{self.role}-{self.version}.properties"
        overrides = "".join(f"{key}={value}\n" for key, value in self.properties().items())
        config = self.directory / "connector.properties"
        config.touch(mode=0o600)
        config.write_text(f"{source.read_text()}\n# test overrides\n{overrides}")
        begin = time.monotonic()
        if self.log_file.exists():  # a start that lost a port keeps its log beside
            self.log_file.rename(self.log_file.with_suffix(f".{time.monotonic_ns()}.log"))
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [*JAVA, f"-Dedc.fs.config={config}", "-cp", f"{lib}/*", MAIN_CLASS],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready(begin + timeout)
        self.started_in = time.monotonic() - begin

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if "java.net.BindException: Address already in use" in self.tail(50000):
                self.stop()
                raise PortTakenError(self.tail())
            if self.process.poll() is not None:
                raise RuntimeError(f"EDC {self.role} {self.version} exited: {self.tail()}")
            try:
                with self.management() as client:
                    if client.post("/v3/assets/request", json=query()).status_code == 200:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"EDC {self.role} {self.version} not ready: {self.tail()}")

    def tail(self, size: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-size:] if self.log_file.exists() else ""

    def management(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.management_url, headers={"x-api-key": self.api_key}, timeout=15
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def query(**filters: str) -> dict[str, object]:
    """A Management API QuerySpec; `filters` are `edc` property = value criteria."""
    return {
        "@context": {"@vocab": EDC},
        "@type": "QuerySpec",
        "limit": 500,
        "filterExpression": [
            {"operandLeft": key, "operator": "=", "operandRight": value}
            for key, value in filters.items()
        ],
    }
