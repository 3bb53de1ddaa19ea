"""Run the suite's jar headless against a landing page, and read its TestNG report.

The run-properties file has no DOCTYPE (the sample's would make the JVM fetch a DTD). The JVM's HTTP
and HTTPS go through the tunnel, except to loopback, which it reaches directly; its trust store
holds only the local schema site's certificate.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from workflow_testkit.ogc_suite.schema_site import TRUST_STORE_PASSWORD

JAR_ENV = "WORKFLOW_OGC_ETS_JAR"
DEFAULT_JAR = Path.home() / ".cache/workflow-middle-layer/ogc/ets-ogcapi-processes10-1.3-aio.jar"


@dataclass(frozen=True)
class TestOutcome:
    name: str  # class.method
    status: str  # PASS, FAIL or SKIP
    message: str


@dataclass(frozen=True)
class SuiteReport:
    outcomes: list[TestOutcome]

    def named(self, status: str) -> dict[str, str]:
        return {o.name: o.message for o in self.outcomes if o.status == status}


def find_jar() -> Path | None:
    jar = Path(os.environ.get(JAR_ENV) or DEFAULT_JAR)
    return jar if jar.is_file() else None


def run_suite(
    jar: Path,
    *,
    landing_page: str,
    echo_process: str,
    tunnel_port: int,
    trust_store: Path,
    out_dir: Path,
    timeout: float = 600,
) -> SuiteReport:
    props = out_dir / "test-run-props.xml"
    props.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<properties version="1.0">\n'
        f'  <entry key="iut">{escape(landing_page)}</entry>\n'
        f'  <entry key="echoprocessid">{escape(echo_process)}</entry>\n'
        "</properties>\n"
    )
    proxy = [
        f"-D{scheme}.proxy{part}"
        for scheme in ("http", "https")
        for part in ("Host=127.0.0.1", f"Port={tunnel_port}")
    ]
    command = [
        "java",
        *proxy,
        "-Dhttp.nonProxyHosts=localhost|127.0.0.1",
        f"-Djavax.net.ssl.trustStore={trust_store}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
        f"-Djavax.net.ssl.trustStorePassword={TRUST_STORE_PASSWORD}",
        "-jar",
        str(jar),
        "-o",
        str(out_dir),
        str(props),
    ]
    log = out_dir / "suite.log"
    with log.open("wb") as sink:
        subprocess.run(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            cwd=out_dir,
        )
    reports = sorted(out_dir.rglob("testng-results.xml"))
    if not reports:
        raise AssertionError(
            f"the suite wrote no TestNG report; its log: {log.read_text()[-4000:]}"
        )
    return read_report(reports[-1])


def read_report(path: Path) -> SuiteReport:
    outcomes = []
    for test_class in ET.parse(path).iter("class"):
        for method in test_class.iter("test-method"):
            if method.get("is-config") == "true":
                continue
            message = method.findtext("exception/message") or ""
            outcomes.append(
                TestOutcome(
                    name=f"{test_class.get('name', '').rsplit('.', 1)[-1]}.{method.get('name')}",
                    status=method.get("status", ""),
                    message=message.strip(),
                )
            )
    return SuiteReport(outcomes)
