"""`workflow-api serve`: one consumer's API, from `WORKFLOW_API_*` (started by the provisioner)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn
from pydantic import BaseModel, ConfigDict, ValidationError

from workflow_api.app import create_app
from workflow_api.settings import Settings
from workflow_common.private_files import restrict_umask
from workflow_common.server_limits import uvicorn_options
from workflow_common.settings import describe_invalid_settings

log = logging.getLogger("workflow_api")


def _serve(settings: Settings, host: str, port: int) -> None:
    # The stdlib loop, not uvloop: uvloop forks the whole server to start each job's process
    # (~30 ms with the loop blocked); asyncio's subprocess start takes ~3 ms (bench/README.md).
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="asyncio",
        log_level="info",
        access_log=False,
        **uvicorn_options(settings),
    )


def configure_logging() -> None:
    """Once, at the entry point. httpx logs whole URLs, and signed URLs are credentials."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Assignment(BaseModel):
    """What a pre-started ("spare") process waits for: its whole environment and where to serve."""

    model_config = ConfigDict(extra="forbid")

    environment: dict[str, str]
    host: str
    port: int
    directory: Path
    log_file: Path


def _await_assignment() -> Assignment | None:
    """Block on stdin for one JSON line; None on end of file (the spare was not needed)."""
    line = sys.stdin.readline()
    if not line.strip():
        return None
    assignment = Assignment.model_validate_json(line)
    log_descriptor = os.open(assignment.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for stream in (1, 2):
        os.dup2(log_descriptor, stream)
    os.close(log_descriptor)
    os.chdir(assignment.directory)
    os.environ.clear()
    os.environ.update(assignment.environment)
    return assignment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="workflow-api")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("serve", help="run with WORKFLOW_API_* settings")
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=8080)
    command.add_argument(
        "--settings-from-stdin",
        action="store_true",
        help="start now, read environment, address and log file as one JSON line, then serve",
    )
    arguments = parser.parse_args(argv)
    restrict_umask()  # databases, uploads, logs, workspaces: 0600 files, 0700 directories
    if arguments.settings_from_stdin:
        assignment = _await_assignment()
        if assignment is None:
            return
        arguments.host, arguments.port = assignment.host, assignment.port
    configure_logging()
    try:
        settings = Settings()
    except ValidationError as error:
        log.error("invalid settings:\n%s", describe_invalid_settings(error, "WORKFLOW_API_"))
        raise SystemExit(2) from error
    _serve(settings, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
