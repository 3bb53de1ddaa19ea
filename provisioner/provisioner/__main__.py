"""`provisioner serve` (settings from `PROVISIONER_*`), `provisioner dev` (the README's run) and
`provisioner publish [--dry-run]` (the asset catalog into the provider's EDC)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

import uvicorn
from pydantic import SecretStr, ValidationError

from provisioner.app import create_app
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.edc.publisher import PublishError, publish
from provisioner.services import offer_target, offering_client
from provisioner.settings import Settings
from workflow_common.private_files import private_dir, restrict_umask
from workflow_common.sandbox import SandboxUnavailable
from workflow_common.server_limits import uvicorn_options
from workflow_common.settings import describe_invalid_settings
from workflow_contracts.asset import AssetFileError, load_catalog

log = logging.getLogger("provisioner")


def configure_logging() -> None:
    """Once, at the entry point. httpx logs whole URLs; some carry secrets."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _generated_secret(path: Path) -> SecretStr:
    """A random secret kept in `path` (0600) across restarts of `provisioner dev`."""
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return SecretStr(path.read_text().strip())


def _dev_settings(host: str, port: int) -> Settings:
    """Embedded defaults: local deployer, SQLite, filesystem storage, the dummy assets."""
    data_dir = Path(os.environ.get("PROVISIONER_DATA_DIR", ".dev-data/provisioner")).resolve()
    private_dir(data_dir)
    overrides = {
        "public_url": f"http://{host}:{port}",
        "data_dir": data_dir,
        "assets_dir": Path("dummy-job/assets").resolve(),
        "admin_token": _generated_secret(data_dir / "admin-token"),
        "edc_endpoint_secret": _generated_secret(data_dir / "edc-endpoint-secret"),
    }
    names = {f"PROVISIONER_{name.upper()}" for name in overrides}
    environment = {k: v for k, v in os.environ.items() if k.startswith("PROVISIONER_")}
    for name in names & set(environment):
        overrides.pop(name.removeprefix("PROVISIONER_").lower())
    if "PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED" in environment:
        overrides.pop("edc_endpoint_secret", None)
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if "PROVISIONER_LOCAL_SANDBOX" in environment:
        return settings
    try:
        LocalSandbox.of(settings).check(
            data_dir / "consumers" / "sandbox-check", settings.assets_dir
        )
    except SandboxUnavailable as error:
        log.error(
            "the bubblewrap sandbox cannot run here (%s): consumers' workers will run"
            " UNCONFINED. Install bubblewrap, or set PROVISIONER_LOCAL_SANDBOX=none to silence"
            " this check",
            error,
        )
        return settings.model_copy(update={"local_sandbox": "none"})
    log.info("consumers' workers run in the bubblewrap sandbox")
    return settings


def _refuse_a_broken_sandbox(settings: Settings) -> None:
    """`serve` with the local deployer: the sandbox must work, unless it is switched off."""
    if settings.deployer != "local":
        return
    try:
        LocalSandbox.of(settings).check(
            settings.data_dir / "consumers" / "sandbox-check", settings.assets_dir
        )
    except SandboxUnavailable as error:
        log.error(
            "%s. The local deployer refuses to run consumers' workers unconfined; set"
            " PROVISIONER_LOCAL_SANDBOX=none to do so anyway",
            error,
        )
        raise SystemExit(2) from error


def _dev_banner(settings: Settings) -> str:
    base = settings.base_url
    token = settings.admin_token.get_secret_value()
    endpoint_secret = settings.edc_endpoint_secret
    query = f"?secret={endpoint_secret.get_secret_value()}" if endpoint_secret else ""
    dataplane = f"{base}/edc/dataplane/provision{query}{'&' if query else '?'}asset=<asset id>"
    return f"""
Workflow provisioner (development) at {base}
Data: {settings.data_dir}

Grant a workflow to a consumer by hand (no EDC needed), then fetch its credentials:

  export ADMIN="Authorization: Bearer {token}"
  curl -s -H "$ADMIN" -H 'Content-Type: application/json' \\
       -d '{{"consumer_id": "alice", "asset_id": "echo"}}' {base}/admin/grants
  # take "secret" from the answer:
  curl -s -H "Authorization: Bearer <secret>" {base}/credentials
  # -> {{"endpoint": ..., "token": ...}}: the consumer's own OGC API - Processes endpoint

EDC sends no auth header, so the provisioning URLs you configure in EDC carry the endpoint secret
({settings.data_dir / "edc-endpoint-secret"}):

  legacy (EDC <= 0.15):  provisioner.http.entries.<name>.endpoint={base}/edc/provision{query}
  data plane:            asset dataAddress baseUrl={dataplane}

"""


def run_publish(settings: Settings, *, dry_run: bool) -> int:
    """Publish (or with `dry_run` only show) the offering; 0 when everything is as planned."""
    try:
        catalog = load_catalog(settings.assets_dir)
        client = offering_client(settings)
    except (AssetFileError, ValueError) as error:
        log.error("cannot publish: %s", error)
        return 1
    try:
        report = publish(client, catalog, offer_target(settings), dry_run=dry_run)
    except PublishError as error:
        log.error("publishing to %s failed: %s", settings.edc_management_url, error)
        return 1
    finally:
        client.close()
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    sys.stdout.flush()
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="provisioner")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run with PROVISIONER_* settings"), ("dev", "embedded defaults")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
    publisher = commands.add_parser(
        "publish", help="offer the asset catalog in the provider's EDC (PROVISIONER_* settings)"
    )
    publisher.add_argument(
        "--dry-run", action="store_true", help="print what would change, change nothing"
    )
    arguments = parser.parse_args(argv)
    restrict_umask()  # its database, pid files, consumers' data: 0600 files, 0700 directories
    configure_logging()
    try:
        if arguments.command == "publish":
            raise SystemExit(run_publish(Settings(), dry_run=arguments.dry_run))
        if arguments.command == "dev":
            settings = _dev_settings(arguments.host, arguments.port)
            sys.stdout.write(_dev_banner(settings))
            sys.stdout.flush()
        else:
            settings = Settings()  # values come from the environment
    except ValidationError as error:
        log.error("invalid settings:\n%s", describe_invalid_settings(error, "PROVISIONER_"))
        raise SystemExit(2) from error
    if arguments.command == "serve":
        _refuse_a_broken_sandbox(settings)
    uvicorn.run(
        create_app(settings),
        host=arguments.host,
        port=arguments.port,
        access_log=False,
        log_level="info",
        **uvicorn_options(settings),
    )


if __name__ == "__main__":
    main()
