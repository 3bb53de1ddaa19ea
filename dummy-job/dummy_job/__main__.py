"""`dummy-job <command>`: run one of the example workers in the current job workspace.

Exit codes: 0 done, 1 unexpected trouble (disk), 2 missing or invalid input, 3 failure on request.
Log lines go to stdout, errors to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from dummy_job import dummy, echo, input_dummy
from dummy_job.errors import JobInputError
from dummy_job.workspace import Workspace

log = logging.getLogger("dummy_job")

EXIT_FAILURE = 1
EXIT_INPUT = 2


def _noop(workspace: Workspace) -> int:
    """Do nothing at all: the baseline for benchmarks."""
    return 0


COMMANDS: dict[str, tuple[Callable[[Workspace], int], str]] = {
    "dummy": (dummy.run, "sleep with progress, write a summary, optionally fail"),
    "input-dummy": (input_dummy.run, "list and transform file, archive and env-file inputs"),
    "echo": (echo.run, "write the literal input 'message' to the output 'echo'"),
    "noop": (_noop, "do nothing and exit 0"),
}


def configure_logging() -> None:
    """Informational lines to stdout, errors to stderr."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    to_stdout = logging.StreamHandler(sys.stdout)
    to_stdout.addFilter(lambda record: record.levelno < logging.ERROR)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.ERROR)
    for handler in (to_stdout, to_stderr):
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[to_stdout, to_stderr], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dummy-job", description="Run an example worker.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary)
    arguments = parser.parse_args(argv)
    configure_logging()
    run, _ = COMMANDS[arguments.command]
    try:
        return run(Workspace.from_environment(os.environ))
    except JobInputError as error:
        log.error("%s: %s", arguments.command, error)
        return EXIT_INPUT
    except OSError as error:
        log.error("%s: %s", arguments.command, error)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
