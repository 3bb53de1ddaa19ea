"""`.dockerignore` read as Docker reads it, and which files of a COPY source reach the build."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def _pattern_to_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().strip("/")
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        parts.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        index += 1
    return re.compile("".join(parts))


@dataclass(frozen=True)
class DockerIgnore:
    """`.dockerignore` matching as Docker does it: last matching pattern wins, `!` re-includes,
    and a path is excluded when it or one of its parent directories is."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        rules: list[tuple[bool, re.Pattern[str]]] = []
        if path.exists():
            for raw in path.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                negated = line.startswith("!")
                rules.append((negated, _pattern_to_regex(line.lstrip("!"))))
        return cls(tuple(rules))

    def excluded(self, relative: str) -> bool:
        """Whether `relative` (a path below the context, '/'-separated) is left out."""
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        excluded = False
        for negated, regex in self.rules:
            if any(regex.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return excluded


def sent_files(context: Path, source: str, ignore: DockerIgnore) -> list[Path]:
    """The files below `context/source` (a file, a directory or a glob) that reach the build."""
    matches = (
        sorted(context.glob(source)) if any(c in source for c in "*?[") else [context / source]
    )
    found: list[Path] = []
    for match in matches:
        candidates = [match] if match.is_file() else [p for p in match.rglob("*") if p.is_file()]
        for candidate in candidates:
            if not ignore.excluded(candidate.relative_to(context).as_posix()):
                found.append(candidate)
    return found
