"""Run the rules as a lint tool from the repository root:

python -m dockerfile_lint [Dockerfile ...]      # default: every image we build
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from dockerfile_lint.parser import parse
from dockerfile_lint.rules import DOCKERFILES, check, image_of


def main(arguments: Iterable[str]) -> int:
    paths = [Path(a).resolve() for a in arguments] or list(DOCKERFILES.values())
    problems = [p for path in paths for p in check(parse(path), image_of(path))]
    for problem in problems:
        sys.stdout.write(f"{problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
