"""`data-sidecar stage-in|push-out|follow`: the sidecar as a command for job containers.

`follow` runs beside the worker (a Kubernetes native sidecar): it relays progress until SIGTERM
(or SIGINT), then pushes out, as `push-out` does but without a log (see `data_sidecar.follow`).
Once its signal handlers are installed it creates the `--ready-file`
(`DATA_SIDECAR_READY_FILE`): a startup probe on that file keeps the worker from starting (and
possibly ending) before a SIGTERM would be heard rather than kill the interpreter outright.

Exit codes: 0 success (push-out: also when outputs are missing; the report says so), 1 a transfer
failed, 2 the command line, manifest or environment is wrong. Errors are one line on stderr. The
push-out report is written to stdout as JSON.

Environment: `DATA_SIDECAR_MANIFEST` (instead of --manifest), `WORKFLOW_WORKSPACE` (instead of
--workspace), `WORKFLOW_PROGRESS_FILE` (instead of --progress-file; default
`<workspace>/.progress`), `DATA_SIDECAR_PROGRESS_INTERVAL` (2 s, how often `follow` looks at the
progress file), and the transfer policy: `DATA_SIDECAR_ATTEMPTS` (5),
`DATA_SIDECAR_INITIAL_WAIT` (1 s), `DATA_SIDECAR_MAX_WAIT` (30 s), `DATA_SIDECAR_CONNECT_TIMEOUT`
(10 s) and `DATA_SIDECAR_READ_TIMEOUT` (60 s). Inputs the manifest marks `external` (URLs a
consumer gave) are fetched through the manifest's `egress` rules (`data_sidecar.egress`).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from data_sidecar.errors import ManifestError, SidecarError
from data_sidecar.follow import follow
from data_sidecar.push_out import PushOutOutcome, run_push_out
from data_sidecar.stage_in import stage_in
from data_sidecar.transport import TransferPolicy
from workflow_contracts.manifest import JobManifest
from workflow_contracts.workspace import CONTAINER_WORKSPACE, PROGRESS_FILE_ENV, WORKSPACE_ENV

log = logging.getLogger("data_sidecar")

MANIFEST_ENV = "DATA_SIDECAR_MANIFEST"
PROGRESS_INTERVAL_ENV = "DATA_SIDECAR_PROGRESS_INTERVAL"
READY_FILE_ENV = "DATA_SIDECAR_READY_FILE"
DEFAULT_PROGRESS_FILE = ".progress"
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
    attend = commands.add_parser(
        "follow", help="relay progress beside the worker; push out on SIGTERM"
    )
    for command in (stage, push, attend):
        command.add_argument(
            "--manifest", type=Path, help=f"job manifest JSON (default: ${MANIFEST_ENV})"
        )
        command.add_argument(
            "--workspace",
            type=Path,
            help=f"job workspace (default: ${WORKSPACE_ENV} or {CONTAINER_WORKSPACE})",
        )
    push.add_argument("--log", type=Path, help="the job's log file, uploaded to the log URL")
    attend.add_argument(
        "--progress-file",
        type=Path,
        help=f"the worker's progress file (default: ${PROGRESS_FILE_ENV} or <workspace>/.progress)",
    )
    attend.add_argument(
        "--ready-file",
        type=Path,
        help=f"created once SIGTERM is handled, for a startup probe (default: ${READY_FILE_ENV})",
    )
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
    if arguments.command == "follow":
        progress_file = arguments.progress_file or Path(
            environment.get(PROGRESS_FILE_ENV, str(workspace / DEFAULT_PROGRESS_FILE))
        )
        try:
            interval = _positive_number(environment, PROGRESS_INTERVAL_ENV, 2.0)
        except ValueError as error:
            log.error("%s", _one_line(error))
            return EXIT_USAGE
        ready_file = arguments.ready_file or environment.get(READY_FILE_ENV)
        return _follow(
            manifest,
            workspace,
            progress_file,
            Path(ready_file) if ready_file else None,
            interval,
            policy,
        )
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
    return _report(manifest, outcome)


def _follow(
    manifest: JobManifest,
    workspace: Path,
    progress_file: Path,
    ready_file: Path | None,
    interval: float,
    policy: TransferPolicy,
) -> int:
    stop = threading.Event()

    def on_signal(_number: int, _frame: FrameType | None) -> None:
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)
    if ready_file is not None:  # only now may the worker start: a SIGTERM will be heard
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.touch()
    log.info("job %s: following the worker", manifest.job_id)
    try:
        outcome = follow(manifest, workspace, progress_file, stop, interval=interval, policy=policy)
    except (SidecarError, OSError) as error:
        log.error("push-out of job %s failed: %s", manifest.job_id, _one_line(error))
        return EXIT_FAILURE
    return _report(manifest, outcome)


def _report(manifest: JobManifest, outcome: PushOutOutcome) -> int:
    sys.stdout.write(outcome.report.model_dump_json() + "\n")
    if not outcome.succeeded:
        log.error(
            "push-out of job %s failed: %s", manifest.job_id, _one_line("; ".join(outcome.errors))
        )
        return EXIT_FAILURE
    return EXIT_OK


def _positive_number(environment: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(environment.get(name, default))
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0")
    return value


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
