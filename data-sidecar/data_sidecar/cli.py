"""`data-sidecar stage-in|push-out`: the sidecar as a command for job containers.

Exit codes: 0 success (push-out: also when outputs are missing; the report says so), 1 a transfer
failed, 2 the command line, manifest or environment is wrong. Errors are one line on stderr. The
push-out report is written to stdout as JSON.

Environment: `DATA_SIDECAR_MANIFEST` (instead of --manifest), `WORKFLOW_WORKSPACE` (instead of
--workspace), and the transfer policy: `DATA_SIDECAR_ATTEMPTS` (5), `DATA_SIDECAR_INITIAL_WAIT`
(1 s), `DATA_SIDECAR_MAX_WAIT` (30 s), `DATA_SIDECAR_CONNECT_TIMEOUT` (10 s) and
`DATA_SIDECAR_READ_TIMEOUT` (60 s).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from data_sidecar.errors import ManifestError, SidecarError
from data_sidecar.push_out import run_push_out
from data_sidecar.stage_in import stage_in
from data_sidecar.transport import TransferPolicy
from workflow_contracts.manifest import JobManifest
from workflow_contracts.workspace import CONTAINER_WORKSPACE, WORKSPACE_ENV

log = logging.getLogger("data_sidecar")

MANIFEST_ENV = "DATA_SIDECAR_MANIFEST"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="data-sidecar",
        description="Stage a job's inputs in, or push its outputs out, through signed URLs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stage = commands.add_parser("stage-in", help="download inputs into the workspace")
    push = commands.add_parser("push-out", help="upload outputs, log and report")
    for command in (stage, push):
        command.add_argument(
            "--manifest", type=Path, help=f"job manifest JSON (default: ${MANIFEST_ENV})"
        )
        command.add_argument(
            "--workspace",
            type=Path,
            help=f"job workspace (default: ${WORKSPACE_ENV} or {CONTAINER_WORKSPACE})",
        )
    push.add_argument("--log", type=Path, help="the job's log file, uploaded to the log URL")
    return parser


def load_manifest(path: Path) -> JobManifest:
    try:
        return JobManifest.model_validate_json(path.read_bytes())
    except OSError as error:
        reason = error.strerror or str(error)
        raise ManifestError(f"cannot read the manifest {path}: {reason}") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ManifestError(
            f"invalid manifest {path}: {error.error_count()} error(s), first at {where}: "
            f"{first['msg']}"
        ) from error


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request with its full URL, signature included.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, environment: Mapping[str, str] | None = None) -> int:
    configure_logging()
    environment = os.environ if environment is None else environment
    arguments = build_parser().parse_args(argv)
    manifest_path = arguments.manifest or environment.get(MANIFEST_ENV)
    if not manifest_path:
        log.error("no manifest: give --manifest FILE or set %s", MANIFEST_ENV)
        return EXIT_USAGE
    workspace = arguments.workspace or Path(environment.get(WORKSPACE_ENV, CONTAINER_WORKSPACE))
    try:
        policy = TransferPolicy.from_environment(environment)
        manifest = load_manifest(Path(manifest_path))
    except (ManifestError, ValueError) as error:
        log.error("%s", _one_line(error))
        return EXIT_USAGE
    if arguments.command == "stage-in":
        return _stage_in(manifest, workspace, policy)
    return _push_out(manifest, workspace, arguments.log, policy)


def _stage_in(manifest: JobManifest, workspace: Path, policy: TransferPolicy) -> int:
    try:
        stage_in(manifest, workspace, policy=policy)
    except (SidecarError, OSError) as error:
        log.error("stage-in of job %s failed: %s", manifest.job_id, _one_line(error))
        return EXIT_FAILURE
    return EXIT_OK


def _push_out(
    manifest: JobManifest, workspace: Path, log_path: Path | None, policy: TransferPolicy
) -> int:
    try:
        outcome = run_push_out(manifest, workspace, log_path, policy=policy)
    except (SidecarError, OSError) as error:
        log.error("push-out of job %s failed: %s", manifest.job_id, _one_line(error))
        return EXIT_FAILURE
    sys.stdout.write(outcome.report.model_dump_json() + "\n")
    if not outcome.succeeded:
        log.error(
            "push-out of job %s failed: %s", manifest.job_id, _one_line("; ".join(outcome.errors))
        )
        return EXIT_FAILURE
    return EXIT_OK


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
