"""Finding a built EDC runtime and running one connector of it on loopback ports.

A runtime is the `lib/` directory Maven fills (`edc-config/runtimes/<version>/target/lib`, see
edc-config/README.md) or `$WORKFLOW_EDC_RUNTIMES/<version>/lib` (a prebuilt copy, e.g. in CI).
`EdcConnector` starts `BaseRuntime` with the repository's properties file for that connector, every
port replaced by a free one and the provisioner's URLs put in, and stops it by its pid.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parents[3]
EDC_CONFIG = REPOSITORY / "edc-config"
MAIN_CLASS = "org.eclipse.edc.boot.system.runtime.BaseRuntime"
API_KEY = "password"  # web.http.management.auth.key of the repository's test connectors
_PORT_KEY = re.compile(r"^(web\.http(?:\.[a-z]+)?\.port)=(\d+)$")


def edc_runtime_lib(version: str) -> Path | None:
    """The runtime's jar directory, or None when it has not been built."""
    candidates = []
    if root := os.environ.get("WORKFLOW_EDC_RUNTIMES"):
        candidates.append(Path(root) / version / "lib")
    candidates.append(Path.home() / ".cache/workflow-middle-layer/edc/runtimes" / version / "lib")
    candidates.append(EDC_CONFIG / "runtimes" / version / "target" / "lib")
    # A runtime without this project's extensions cannot run the flows (edc-config/extensions).
    return next((lib for lib in candidates if any(lib.glob("workflow-edc-extensions-*.jar"))), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connector_properties(
    version: str, role: str, overrides: dict[str, str], chosen: dict[str, int] | None = None
) -> tuple[str, dict[str, int]]:
    """The repository's `<role>-<version>.properties` with free ports (or the `chosen` ones)
    and `overrides` applied."""
    source = (EDC_CONFIG / "connectors" / f"{role}-{version}.properties").read_text()
    ports: dict[str, int] = {}
    lines = []
    for line in source.splitlines():
        if match := _PORT_KEY.match(line):
            old = int(match.group(2))
            ports[match.group(1)] = (chosen or {}).get(match.group(1)) or free_port()
            ports[f"old:{old}"] = ports[match.group(1)]
            lines.append(f"{match.group(1)}={ports[match.group(1)]}")
        else:
            lines.append(line)
    text = "\n".join(lines)
    for key, value in ports.items():
        if key.startswith("old:"):  # the URLs naming the old port, whichever loopback spelling
            text = re.sub(rf"(localhost|127\.0\.0\.1):{key[4:]}\b", rf"\g<1>:{value}", text)
    values = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    values.update(overrides)
    body = "\n".join(f"{key}={value}" for key, value in values.items()) + "\n"
    return body, {k: v for k, v in ports.items() if not k.startswith("old:")}


@dataclass
class EdcConnector:
    version: str
    role: str
    directory: Path
    overrides: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def choose_ports(self) -> None:
        """Pick the ports now (before `start`), e.g. to configure a provisioner first."""
        _, self.ports = connector_properties(self.version, self.role, self.overrides)

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web.http.management.port']}/management"

    @property
    def provisioning_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web.http.provision.port']}/provisioning"

    @property
    def protocol_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web.http.protocol.port']}/protocol"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.role}-{self.version}.log"

    def start(self, timeout: float = 120.0) -> None:
        lib = edc_runtime_lib(self.version)
        if lib is None:
            raise RuntimeError(f"EDC runtime {self.version} is not built")
        self.directory.mkdir(parents=True, exist_ok=True)
        chosen = dict(self.ports)
        for attempt in range(3):
            body, self.ports = connector_properties(self.version, self.role, self.overrides, chosen)
            config = self.directory / f"{self.role}-{self.version}.properties"
            config.write_text(body)
            config.chmod(0o600)
            with self.log_file.open("wb") as log:
                self.process = subprocess.Popen(
                    [
                        "java",
                        "-Xmx384m",
                        f"-Dedc.fs.config={config}",
                        "-cp",
                        f"{lib}/*",
                        MAIN_CLASS,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_ready(timeout)
                return
            except RuntimeError:
                # A free port picked here may be taken by another process before the JVM binds
                # it; new ports then, unless the caller chose them (a restart keeps its URLs).
                lost_a_port = "Address already in use" in self.log_file.read_text()
                if chosen or not lost_a_port or attempt == 2:
                    raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"EDC exited: {self.log_file.read_text()[-3000:]}")
            try:
                answer = httpx.post(
                    f"{self.management_url}/v3/assets/request",
                    json={
                        "@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"},
                        "@type": "QuerySpec",
                    },
                    headers={"x-api-key": API_KEY},
                    timeout=2,
                )
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"EDC not ready after {timeout} s: {self.log_file.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def require_edc_runtime(version: str) -> Path:
    """The runtime's lib directory; skips the test without it (fails with
    `WORKFLOW_TESTS_REQUIRE_EDC=1`, as in CI)."""
    import pytest  # noqa: PLC0415 - only tests call this

    lib = edc_runtime_lib(version)
    if lib is None or shutil.which("java") is None:
        message = (
            f"EDC runtime {version} not built (mvn -f edc-config/runtimes/{version}/pom.xml"
            " package, see edc-config/README.md) or no java"
        )
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_EDC") == "1":
            pytest.fail(f"WORKFLOW_TESTS_REQUIRE_EDC=1 but {message}")
        pytest.skip(message)
    return lib
