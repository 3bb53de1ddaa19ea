"""A small Dockerfile parser: instructions, stages, and what the final stage runs.

Parsing covers what Dockerfiles here use: line continuations, comments, parser directives,
exec (JSON) and shell forms, `ENV`/`ARG`/`LABEL` key=value pairs, `${VAR}`/`$VAR` expansion from
`ARG` defaults and `ENV` values, stages named with `AS`. Heredocs are not supported.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str  # the text after the keyword, continuation lines joined with a space
    line: int  # 1-based line of the keyword

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    index: int
    base: str  # the FROM image, variables expanded
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    arguments: dict[str, str] = field(default_factory=dict)  # ARG defaults, incl. global ones
    environment: dict[str, str] = field(default_factory=dict)  # ENV, in order

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def expand(self, text: str) -> str:
        """`$VAR` / `${VAR}` from this stage's ENV and ARG values; unknown ones stay as they are."""

        def value(match: re.Match[str]) -> str:
            name = match.group("braced") or match.group("bare")
            known = {**self.arguments, **self.environment}
            return known.get(name, match.group(0))

        return VARIABLE.sub(value, text)


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction]
    stages: list[Stage]
    directives: dict[str, str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for instruction in self.final.all("LABEL"):
            labels.update(pairs(instruction.arguments, self.final))
        return labels

    @property
    def command(self) -> list[str]:
        """ENTRYPOINT + CMD of the final stage, as the container runs them (exec form only)."""
        stage = self.final
        entrypoint = stage.last("ENTRYPOINT")
        cmd = stage.last("CMD")
        argv: list[str] = []
        for instruction in (entrypoint, cmd):
            if instruction is None:
                continue
            form = instruction.exec_form
            if form is None:
                raise ValueError(f"{self.path}:{instruction.line}: not in exec form")
            argv += form
        return argv

    @property
    def healthcheck(self) -> list[str] | None:
        """The HEALTHCHECK command (exec form) of the final stage, None when there is none."""
        instruction = self.final.last("HEALTHCHECK")
        if instruction is None or instruction.arguments.strip().upper() == "NONE":
            return None
        _, _, command = instruction.arguments.partition("CMD")
        form = Instruction("CMD", command, instruction.line).exec_form
        if form is None:
            raise ValueError(f"{self.path}:{instruction.line}: HEALTHCHECK not in exec form")
        return form

    @property
    def user(self) -> str | None:
        instruction = self.final.last("USER")
        return self.final.expand(instruction.arguments.strip()) if instruction else None

    @property
    def volumes(self) -> list[str]:
        found: list[str] = []
        for instruction in self.final.all("VOLUME"):
            form = instruction.exec_form
            found += form if form is not None else instruction.arguments.split()
        return [self.final.expand(v) for v in found]

    @property
    def exposed_ports(self) -> list[int]:
        ports: list[int] = []
        for instruction in self.final.all("EXPOSE"):
            for item in instruction.arguments.split():
                ports.append(int(self.final.expand(item).split("/")[0]))
        return ports

    @property
    def workdir(self) -> str | None:
        instruction = self.final.last("WORKDIR")
        return self.final.expand(instruction.arguments.strip()) if instruction else None

    def copies(self) -> Iterator[tuple[Stage, Instruction, list[str], list[str], str]]:
        """(stage, instruction, flags, sources, destination) of every COPY and ADD."""
        for stage in self.stages:
            for instruction in stage.instructions:
                if instruction.keyword not in {"COPY", "ADD"}:
                    continue
                words = instruction.exec_form or shlex.split(instruction.arguments)
                flags = [w for w in words if w.startswith("--")]
                rest = [stage.expand(w) for w in words if not w.startswith("--")]
                yield stage, instruction, flags, rest[:-1], rest[-1]


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each instruction, continuations joined, comments dropped."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and buffer):
            continue  # comments and empty lines inside a continuation are skipped, as Docker does
        if not stripped:
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].rstrip())
            continue
        buffer.append(stripped)
        yield start, " ".join(part for part in buffer if part)
        buffer = []
    if buffer:
        yield start, " ".join(buffer)


def parse_directives(text: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for raw in text.splitlines():
        match = re.fullmatch(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*", raw)
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)
    return directives


def pairs(text: str, stage: Stage | None = None) -> dict[str, str]:
    """`KEY=value KEY2="value 2"` (or the legacy `KEY value`) of ENV, ARG and LABEL."""
    words = shlex.split(text, posix=True)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    found: dict[str, str] = {}
    for word in words:
        key, separator, value = word.partition("=")
        found[key] = (stage.expand(value) if stage else value) if separator else ""
    return found


def parse(path: Path) -> Dockerfile:
    text = path.read_text()
    instructions: list[Instruction] = []
    stages: list[Stage] = []
    global_arguments: dict[str, str] = {}
    for line, content in logical_lines(text):
        keyword, _, arguments = content.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip(), line)
        instructions.append(instruction)
        if instruction.keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            scope = Stage(len(stages), "", None, line, arguments=dict(global_arguments))
            scope.base = scope.expand(words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                scope.name = words[2]
            if stages and scope.base in {s.name for s in stages}:
                parent = next(s for s in stages if s.name == scope.base)
                scope.environment = dict(parent.environment)
            stages.append(scope)
            continue
        if not stages:
            if instruction.keyword == "ARG":
                global_arguments.update(pairs(instruction.arguments))
            continue
        stage = stages[-1]
        stage.instructions.append(instruction)
        if instruction.keyword == "ARG":
            for key, value in pairs(instruction.arguments, stage).items():
                stage.arguments[key] = value or global_arguments.get(key, "")
        elif instruction.keyword == "ENV":
            # each ENV instruction sees the values of the previous ones, not its own
            stage.environment.update(pairs(instruction.arguments, stage))
    if not stages:
        raise ValueError(f"{path}: no FROM")
    return Dockerfile(path, instructions, stages, parse_directives(text))
