"""`workflow-api serve`: one consumer's API, from `WORKFLOW_API_*` (started by the provisioner)."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from pydantic import ValidationError

from workflow_api.app import create_app
from workflow_api.settings import Settings, describe_invalid_settings

log = logging.getLogger("workflow_api")


def _serve(settings: Settings, host: str, port: int) -> None:
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def configure_logging() -> None:
    """Once, at the entry point. httpx logs whole URLs, and signed URLs are credentials."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="workflow-api")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("serve", help="run with WORKFLOW_API_* settings")
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args(argv)
    configure_logging()
    try:
        settings = Settings()
    except ValidationError as error:
        log.error("invalid settings:\n%s", describe_invalid_settings(error, "WORKFLOW_API_"))
        raise SystemExit(2) from error
    _serve(settings, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
