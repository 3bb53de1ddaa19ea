"""The OGC conformance suite against a real workflow-api: proxies, schema site, the jar."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from provisioner.tokens.signing_key import SigningKey
from workflow_testkit.ogc_suite.bearer_proxy import BearerProxy
from workflow_testkit.ogc_suite.schema_site import (
    SCHEMA_HOST,
    SchemaSite,
    SiteCertificate,
    load_schemas,
    make_site_certificate,
)
from workflow_testkit.ogc_suite.suite import find_jar
from workflow_testkit.ogc_suite.tunnel import Site, Tunnel
from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import REPOSITORY, ThreadedServer, start_api

# The standard's schemas, beside the suite's bundle (OGC_SOURCES as in .ci/build-ogc-ets.sh).
OGC_SOURCES = Path(os.environ.get("OGC_SOURCES") or REPOSITORY.parent / "shared" / "ogc")
SCHEMAS_TARBALL = OGC_SOURCES / "ogcapi-processes-1.0-schemas.tar.gz"
REQUIRE = "WORKFLOW_TESTS_REQUIRE_OGC_SUITE"


def _missing(problem: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def suite_jar() -> Path:
    jar = find_jar()
    if jar is None:
        _missing("the suite's jar is not built (bash .ci/build-ogc-ets.sh)")
    if shutil.which("java") is None or shutil.which("keytool") is None:
        _missing("no java/keytool on PATH")
    assert jar is not None
    return jar


@dataclass
class SchemaSiteServers:
    site: SchemaSite
    certificate: SiteCertificate
    tunnel: Tunnel


@pytest.fixture(scope="session")
def schema_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaSiteServers]:
    if not SCHEMAS_TARBALL.is_file():
        _missing(f"no {SCHEMAS_TARBALL}")
    directory = tmp_path_factory.mktemp("schema-site")
    certificate = make_site_certificate(directory)
    site = SchemaSite(load_schemas(SCHEMAS_TARBALL))
    plain, tls = bound_socket(), bound_socket()
    servers = [
        ThreadedServer(site, plain),
        ThreadedServer(
            site,
            tls,
            ssl_certfile=str(certificate.cert_file),
            ssl_keyfile=str(certificate.key_file),
        ),
    ]
    for server in servers:
        server.start()
    tunnel = Tunnel(
        bound_socket(), {SCHEMA_HOST: Site(plain.getsockname()[1], tls.getsockname()[1])}
    )
    tunnel.start()
    yield SchemaSiteServers(site, certificate, tunnel)
    tunnel.stop()
    for server in servers:
        server.stop()


@dataclass
class ProxiedApi:
    landing_page: str


@pytest.fixture
def proxied_api(tmp_path: Path) -> Iterator[ProxiedApi]:
    """A workflow-api granted `echo`, reached through a proxy adding the consumer's token."""
    proxy_sock = bound_socket()
    proxy_url = f"http://127.0.0.1:{proxy_sock.getsockname()[1]}"
    api = start_api(tmp_path / "api", SigningKey.generate(), public_url=proxy_url)
    proxy = ThreadedServer(BearerProxy(api.server.url, api.token()), proxy_sock)
    proxy.start()
    admin = httpx.Client(base_url=api.server.url, headers=api.admin.headers, timeout=30)
    admin.put("/admin/grants/echo", json={}).raise_for_status()  # not through the proxy
    admin.close()
    yield ProxiedApi(landing_page=f"{proxy_url}/")
    proxy.stop()
    api.stop()
