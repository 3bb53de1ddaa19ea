"""`provisioner serve` (settings from `PROVISIONER_*`) and `provisioner dev` (the README's run)."""

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
from provisioner.settings import Settings
from workflow_api.server_limits import uvicorn_options
from workflow_api.settings import describe_invalid_settings

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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    return Settings(**overrides)  # type: ignore[arg-type]


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="provisioner")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run with PROVISIONER_* settings"), ("dev", "embedded defaults")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args(argv)
    configure_logging()
    try:
        if arguments.command == "dev":
            settings = _dev_settings(arguments.host, arguments.port)
            sys.stdout.write(_dev_banner(settings))
            sys.stdout.flush()
        else:
            settings = Settings()  # values come from the environment
    except ValidationError as error:
        log.error("invalid settings:\n%s", describe_invalid_settings(error, "PROVISIONER_"))
        raise SystemExit(2) from error
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
