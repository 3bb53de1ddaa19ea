"""External inputs through the egress policy, against loopback servers the tests run.

Loopback is not global unicast, so every server here is refused unless the test allow-lists it;
names are resolved by a hosts-style table the tests inject, never by DNS.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from data_sidecar import TransferPolicy, stage_in
from data_sidecar.cli import main
from data_sidecar.egress import Address, EgressPolicy, EgressRefusedError
from data_sidecar.egress_http import (
    Deadline,
    EgressFailedError,
    PinnedBackend,
    guarded_client,
    read_limited,
)
from data_sidecar.errors import StageInError
from tests.data_sidecar.builders import manifest
from tests.data_sidecar.storage_server import Answer, FakeStorage, StorageServer

BODY = b"external bytes\n"


class HostsTable:
    """Answers from a table and counts the questions; an unknown name resolves to nothing."""

    def __init__(self, entries: dict[str, list[str]]) -> None:
        self.entries = entries
        self.asked: list[str] = []

    def __call__(self, host: str, _port: int) -> list[Address]:
        self.asked.append(host)
        return [ipaddress.ip_address(a) for a in self.entries.get(host, [])]


@pytest.fixture
def other_storage() -> Iterator[FakeStorage]:
    """A second server, on another loopback address (Linux routes all of 127/8 to lo)."""
    with StorageServer("127.0.0.2") as running:
        yield running


def external(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "remote",
        "kind": "file",
        "url": url,
        "max_size": 1024,
        "external": True,
        **fields,
    }


def job(url: str, **egress: Any) -> Any:
    return manifest(inputs=[external(url)], egress=egress)


def staged_text(workspace: Path) -> bytes:
    return (workspace / "inputs" / "remote").read_bytes()


def test_loopback_is_refused_by_default_before_any_request(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    url = storage.put_object("/data.txt", BODY)
    with pytest.raises(StageInError, match=r"refused: 127\.0\.0\.1 is not a public address"):
        stage_in(job(url), workspace, policy=policy)
    assert storage.requests == []
    assert not (workspace / "inputs" / "remote").exists()


def test_loopback_is_fetched_when_allow_listed(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    url = storage.put_object("/data.txt", BODY)
    stage_in(job(url, allow_cidrs=["127.0.0.1/32"]), workspace, policy=policy)
    assert staged_text(workspace) == BODY


def test_signed_storage_urls_are_not_subject_to_the_policy(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    url = storage.put_object("/data.txt", BODY)
    inputs = [{"id": "remote", "kind": "file", "url": url, "max_size": 1024}]
    stage_in(manifest(inputs=inputs), workspace, policy=policy)
    assert staged_text(workspace) == BODY


def test_a_redirect_to_an_address_not_allow_listed_is_refused_at_the_hop(
    storage: FakeStorage, other_storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    target = other_storage.put_object("/secret.txt", b"internal")
    storage.always["/start"] = Answer(status=302, location=target)
    with pytest.raises(StageInError, match=r"refused: 127\.0\.0\.2 is not a public address"):
        stage_in(job(storage.url("/start"), allow_cidrs=["127.0.0.1/32"]), workspace, policy=policy)
    assert storage.count("GET", "/start") == 1
    assert other_storage.requests == []


def test_a_redirect_between_allowed_servers_is_followed(
    storage: FakeStorage, other_storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    target = other_storage.put_object("/data.txt", BODY)
    storage.always["/start"] = Answer(status=307, location=target)
    rules = {"allow_cidrs": ["127.0.0.1/32", "127.0.0.2/32"]}
    stage_in(job(storage.url("/start"), **rules), workspace, policy=policy)
    assert staged_text(workspace) == BODY


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("ftp://127.0.0.1/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://[::1]:1/x", "::1 is not a public address"),
        ("http://[::ffff:127.0.0.2]:1/x", "is not a public address"),
    ],
)
def test_a_redirect_to_another_scheme_or_a_refused_literal_is_refused(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, location: str, reason: str
) -> None:
    storage.always["/start"] = Answer(status=301, location=location)
    with pytest.raises(StageInError, match=reason):
        stage_in(job(storage.url("/start"), allow_cidrs=["127.0.0.1/32"]), workspace, policy=policy)
    assert storage.count("GET", "/start") == 1


def test_redirects_are_bounded(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.always["/loop"] = Answer(status=302, location="/loop")
    rules = {"allow_cidrs": ["127.0.0.1/32"], "max_redirects": 3}
    with pytest.raises(StageInError, match="more than 3 redirects"):
        stage_in(job(storage.url("/loop"), **rules), workspace, policy=policy)
    assert storage.count("GET", "/loop") == 4


def test_a_redirect_back_into_the_api_is_refused(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    port = int(storage.base_url.rsplit(":", 1)[1])
    storage.always["/start"] = Answer(status=302, location=f"http://LOCALHOST.:{port}/admin")
    rules = {"allow_cidrs": ["127.0.0.0/8"], "own_origins": [f"localhost:{port}"]}
    with pytest.raises(StageInError, match="this API itself"):
        stage_in(job(storage.url("/start"), **rules), workspace, policy=policy)
    assert storage.count("GET", "/admin") == 0


def test_a_name_resolving_to_loopback_is_refused_unless_allow_listed(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/data.txt", BODY)
    port = int(storage.base_url.rsplit(":", 1)[1])
    url = f"http://files.test:{port}/data.txt"
    hosts = HostsTable({"files.test": ["127.0.0.1"]})
    with pytest.raises(
        StageInError, match=r"files\.test resolves to an address that is not public"
    ):
        stage_in(job(url), workspace, policy=policy, resolver=hosts)
    assert storage.requests == []
    stage_in(job(url, allow_hosts=["files.test"]), workspace, policy=policy, resolver=hosts)
    assert staged_text(workspace) == BODY
    assert storage.requests[-1].headers["Host"] == f"files.test:{port}"


def test_the_connection_goes_to_the_checked_address_resolved_once(
    other_storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    """A rebinding answer (allowed first, then another address) is never asked for twice, and
    the socket is opened to the address that was checked."""
    other_storage.put_object("/data.txt", BODY)
    port = int(other_storage.base_url.rsplit(":", 1)[1])
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])

    def rebinding(host: str, _port: int) -> list[Address]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    rules = {"allow_cidrs": ["127.0.0.2/32"]}
    url = f"http://rebind.test:{port}/data.txt"
    stage_in(job(url, **rules), workspace, policy=policy, resolver=rebinding)
    assert staged_text(workspace) == BODY
    assert next(answers) == ["127.0.0.1"]  # exactly one answer was consumed
    assert other_storage.requests[-1].local_address == "127.0.0.2"

    backend = PinnedBackend(EgressPolicy.build(**rules), HostsTable({"x.test": ["127.0.0.2"]}))
    stream = backend.connect_tcp("x.test", port, timeout=2)
    try:
        assert stream.get_extra_info("server_addr") == ("127.0.0.2", port)
    finally:
        stream.close()
    with pytest.raises(EgressRefusedError):
        backend.connect_tcp("y.test", port, timeout=2)  # resolves to nothing


def test_a_total_deadline_bounds_a_slow_server(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy
) -> None:
    storage.put_object("/slow.txt", BODY)
    storage.always["/slow.txt"] = Answer(delay=1.5)
    rules = {"allow_cidrs": ["127.0.0.1/32"], "deadline_seconds": 0.5}
    started = time.monotonic()
    with pytest.raises(StageInError, match=r"failed: took longer than 0.5 s"):
        stage_in(job(storage.url("/slow.txt"), **rules), workspace, policy=policy)
    assert time.monotonic() - started < 1.4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_failures_of_allowed_hosts_read_the_same_whatever_happened(
    storage: FakeStorage, tmp_path: Path, policy: TransferPolicy
) -> None:
    """A closed port, a dropped connection and a stalled answer give one message."""
    storage.put_object("/drop", BODY)
    storage.always["/drop"] = Answer(drop=True)
    storage.put_object("/stall", BODY)
    storage.always["/stall"] = Answer(delay=3)
    quick = TransferPolicy(attempts=1, connect_timeout=1, read_timeout=0.3)
    urls = [f"http://127.0.0.1:{free_port()}/x", storage.url("/drop"), storage.url("/stall")]
    reasons = set()
    for number, url in enumerate(urls):
        with pytest.raises(StageInError) as caught:
            stage_in(job(url, allow_cidrs=["127.0.0.1/32"]), tmp_path / str(number), policy=quick)
        reasons.add(str(caught.value).rsplit("failed", 1)[1])
    assert reasons == {
        " after 1 attempts: no answer (no connection, a timeout or a broken response)"
    }


def test_the_cli_applies_the_manifests_rules(
    storage: FakeStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = storage.put_object("/data.txt", BODY)
    manifest_file = tmp_path / "manifest.json"
    workspace = tmp_path / "workspace"
    manifest_file.write_text(job(url).model_dump_json())
    assert main(["stage-in", "--manifest", str(manifest_file), "--workspace", str(workspace)]) == 1
    assert "127.0.0.1 is not a public address" in caplog.text
    assert storage.requests == []
    manifest_file.write_text(job(url, allow_cidrs=["127.0.0.1/32"]).model_dump_json())
    assert main(["stage-in", "--manifest", str(manifest_file), "--workspace", str(workspace)]) == 0
    assert staged_text(workspace) == BODY


def test_guarded_clients_ignore_proxy_settings(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would resolve the name itself: the environment's proxies are not used."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{free_port()}")
    url = storage.put_object("/data.txt", BODY)
    stage_in(job(url, allow_cidrs=["127.0.0.1/32"]), workspace, policy=policy)
    assert staged_text(workspace) == BODY
    assert httpx.URL(url).host == "127.0.0.1"


def _certificate_authority(tmp_path: Path, server_name: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for `server_name` (files: CA, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name(server_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.mark.parametrize(("certified", "works"), [("files.test", True), ("other.test", False)])
def test_https_to_a_pinned_address_verifies_the_certificate_for_the_name(
    tmp_path: Path, certified: str, works: bool
) -> None:
    """The socket goes to the checked IP, yet TLS (SNI and the hostname check) uses the name."""
    ca, certificate, key = _certificate_authority(tmp_path, certified)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    with StorageServer(tls=server_context) as storage:
        storage.put_object("/data.txt", BODY)
        port = int(storage.base_url.rsplit(":", 1)[1])
        policy = EgressPolicy.build(allow_hosts=["files.test"])
        client_context = ssl.create_default_context(cafile=str(ca))
        timeout = httpx.Timeout(2.0)
        hosts = HostsTable({"files.test": ["127.0.0.1"]})
        with guarded_client(policy, timeout, hosts, client_context) as client:
            url = f"https://files.test:{port}/data.txt"
            if works:
                status, body = read_limited(client, policy, url, 1024, Deadline(5, timeout))
                assert (status, body) == (200, BODY)
                assert storage.requests[-1].headers["Host"] == f"files.test:{port}"
            else:
                with pytest.raises(EgressFailedError):
                    read_limited(client, policy, url, 1024, Deadline(5, timeout))
                assert storage.requests == []
