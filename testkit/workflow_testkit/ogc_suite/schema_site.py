"""The OGC schema site's Processes schemas, served on loopback from the standard's tarball.

The suite validates responses against `http(s)://schemas.opengis.net/ogcapi/processes/part1/1.0/
openapi/...`; those paths map onto `core/openapi/...` in the tarball. Requests may arrive with an
absolute target (a forward proxy passes plain-HTTP requests on unchanged), so only the path counts.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workflow_common.private_files import write_secret_file

SCHEMA_HOST = "schemas.opengis.net"
URL_PREFIX = "/ogcapi/processes/part1/1.0/openapi/"
TARBALL_PREFIX = "core/openapi/"
TRUST_STORE_PASSWORD = "ogc-suite"  # guards nothing: a trust store holds one public certificate


def load_schemas(tarball: Path) -> dict[str, bytes]:
    """URL path -> file content, for every file under `core/openapi/` in the tarball."""
    schemas: dict[str, bytes] = {}
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith(TARBALL_PREFIX):
                extracted = archive.extractfile(member)
                assert extracted is not None
                schemas[URL_PREFIX + member.name.removeprefix(TARBALL_PREFIX)] = extracted.read()
    return schemas


class SchemaSite:
    """An ASGI app answering the schema files, and 404 for anything else; records what was asked."""

    def __init__(self, schemas: dict[str, bytes]) -> None:
        self._schemas = schemas
        self.served: list[str] = []
        self.missing: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = urlsplit(scope["path"]).path if "://" in scope["path"] else scope["path"]
        body = self._schemas.get(path)
        (self.served if body is not None else self.missing).append(path)
        status, content = (
            (200, body) if body is not None else (404, b"not a schema of the standard")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/yaml"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


@dataclass(frozen=True)
class SiteCertificate:
    cert_file: Path
    key_file: Path
    trust_store: Path


def make_site_certificate(directory: Path) -> SiteCertificate:
    """A self-signed certificate for the schema host, and a PKCS#12 trust store holding only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SCHEMA_HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SCHEMA_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "schema-site.crt"
    key_file = directory / "schema-site.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_secret_file(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    trust_store = directory / "trust-store.p12"
    subprocess.run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "schema-site",
            "-file",
            str(cert_file),
            "-keystore",
            str(trust_store),
            "-storetype",
            "PKCS12",
            "-storepass",
            TRUST_STORE_PASSWORD,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return SiteCertificate(cert_file, key_file, trust_store)
