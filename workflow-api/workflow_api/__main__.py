"""`workflow-api serve` (settings from `WORKFLOW_API_*`) and `workflow-api dev` (try it alone)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from workflow_api.app import create_app
from workflow_api.assets import AssetRegistry
from workflow_api.db import make_engine
from workflow_api.settings import Settings
from workflow_api.signing_keys import SigningKey
from workflow_contracts.asset import load_catalog
from workflow_contracts.tokens import CONSUMER_SCOPE

log = logging.getLogger("workflow_api")

DEV_CONSUMER = "dev-consumer"
DEV_ISSUER = "workflow-api-dev"


def _serve(settings: Settings, host: str, port: int) -> None:
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def _dev(host: str, port: int) -> None:
    """A workflow-api with the dummy assets granted and a token printed, on embedded defaults."""
    data_dir = Path(os.environ.get("WORKFLOW_API_DATA_DIR", ".dev-data")).resolve()
    key = SigningKey.load_or_create(data_dir / "dev-signing-key.pem")
    jwks = key.write_jwks(data_dir / "dev-jwks.json")
    settings = Settings(
        consumer_id=DEV_CONSUMER,
        data_dir=data_dir,
        assets_dir=Path(os.environ.get("WORKFLOW_API_ASSETS_DIR", "dummy-job/assets")).resolve(),
        public_url=f"http://{host}:{port}",
        token_issuer=DEV_ISSUER,
        token_audience=f"workflow-api/{DEV_CONSUMER}",
        jwks_file=jwks,
    )
    registry = AssetRegistry(
        load_catalog(settings.assets_dir), make_engine(settings.resolved_database_url)
    )
    for asset_id in sorted(load_catalog(settings.assets_dir)):
        registry.grant(asset_id, agreement_id="development", expires_at=None)
    token = key.mint(
        issuer=DEV_ISSUER,
        subject=DEV_CONSUMER,
        audience=settings.token_audience,
        lifetime_seconds=24 * 3600,
        scope=CONSUMER_SCOPE,
    )
    sys.stdout.write(
        f"\nWorkflow API (development) at {settings.base_url}\n"
        f"Data: {data_dir}\n"
        f"Token (24 h):\n\n  export TOKEN={token}\n\n"
        f'Try: curl -H "Authorization: Bearer $TOKEN" {settings.base_url}/processes\n\n'
    )
    sys.stdout.flush()
    _serve(settings, host, port)


def configure_logging() -> None:
    """Once, at the entry point. httpx logs whole URLs, and signed URLs are credentials."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="workflow-api")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run with WORKFLOW_API_* settings"), ("dev", "try it alone")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args(argv)
    configure_logging()
    if arguments.command == "dev":
        _dev(arguments.host, arguments.port)
        return
    try:
        settings = Settings()
    except ValidationError as error:
        log.error("invalid settings:\n%s", error)
        raise SystemExit(2) from error
    _serve(settings, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
