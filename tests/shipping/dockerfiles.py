"""A small Dockerfile parser and the house rules for our images.

The rules are hadolint's spirit plus what hadolint cannot know about this repository (numeric
non-root user, COPY sources that exist and survive `.dockerignore`, HEALTHCHECK on the servers).
Run as a lint tool from the repository root:

    python -m tests.shipping.dockerfiles [Dockerfile ...]      # default: every image we build

Parsing covers what Dockerfiles here use: line continuations, comments, parser directives,
exec (JSON) and shell forms, `ENV`/`ARG`/`LABEL` key=value pairs, `${VAR}`/`$VAR` expansion from
`ARG` defaults and `ENV` values, stages named with `AS`. Heredocs are not supported.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
# image -> Dockerfile; the build context of all of them is the repository root
DOCKERFILES = {
    "provisioner": REPOSITORY / "provisioner" / "Dockerfile",
    "workflow-api": REPOSITORY / "workflow-api" / "Dockerfile",
    "data-sidecar": REPOSITORY / "data-sidecar" / "Dockerfile",
    "dummy-job": REPOSITORY / "dummy-job" / "Dockerfile",
    "edc": REPOSITORY / "edc-config" / "Dockerfile",
}
SERVERS = frozenset({"provisioner", "workflow-api"})  # long-running HTTP servers of ours
REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
)
SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|secret|token|api_?key|access_?key|private_?key|credential)"
)
FULL_VERSION = re.compile(r"\d+\.\d+\.\d+")
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|rustc|cargo)\b")
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


# --- .dockerignore ------------------------------------------------------------------------------


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


# --- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        where = (
            self.path.relative_to(REPOSITORY) if self.path.is_relative_to(REPOSITORY) else self.path
        )
        return f"{where}:{self.line} {self.rule} {self.message}"


def _run_commands(stage: Stage) -> Iterator[tuple[Instruction, str]]:
    for instruction in stage.all("RUN"):
        form = instruction.exec_form
        text = " ".join(form) if form is not None else instruction.arguments
        yield instruction, text


def check_pinned_bases(dockerfile: Dockerfile) -> Iterator[Problem]:
    names = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        base = stage.base
        if base in names or base == "scratch":
            continue
        if "$" in base:
            yield Problem(dockerfile.path, stage.line, "DF001", f"unresolved base image {base}")
            continue
        image, _, digest = base.partition("@")
        last = image.rsplit("/", 1)[-1]
        tag = last.partition(":")[2]
        if digest.startswith("sha256:"):
            continue
        if not tag:
            yield Problem(dockerfile.path, stage.line, "DF001", f"untagged base image {base}")
        elif tag == "latest" or not FULL_VERSION.search(tag):
            yield Problem(
                dockerfile.path, stage.line, "DF001", f"base {base} not pinned to a full version"
            )


def check_user(dockerfile: Dockerfile) -> Iterator[Problem]:
    user = dockerfile.user
    line = dockerfile.final.line
    if user is None:
        yield Problem(dockerfile.path, line, "DF002", "the final stage has no USER (runs as root)")
        return
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if not match:
        yield Problem(dockerfile.path, line, "DF002", f"USER {user} is not numeric (uid[:gid])")
    elif int(match.group(1)) == 0 or (match.group(2) is not None and int(match.group(2)) == 0):
        yield Problem(dockerfile.path, line, "DF002", f"USER {user} is root")


def check_add(dockerfile: Dockerfile) -> Iterator[Problem]:
    for _, instruction, _, sources, _ in dockerfile.copies():
        if instruction.keyword != "ADD":
            continue
        remote = [s for s in sources if re.match(r"(?i)(https?|git)://|git@", s)]
        what = "a URL" if remote else "local files (use COPY)"
        yield Problem(dockerfile.path, instruction.line, "DF003", f"ADD of {what}")


def check_apt(dockerfile: Dockerfile) -> Iterator[Problem]:
    for stage in dockerfile.stages:
        for instruction, text in _run_commands(stage):
            if not re.search(r"\bapt(-get)?\s+(\S+\s+)*install\b", text):
                continue
            if "--no-install-recommends" not in text:
                yield Problem(
                    dockerfile.path,
                    instruction.line,
                    "DF004",
                    "apt install without --no-install-recommends",
                )
            if not re.search(r"rm -rf /var/lib/apt/lists(/\*)?", text):
                yield Problem(
                    dockerfile.path,
                    instruction.line,
                    "DF004",
                    "apt lists not removed in the same RUN",
                )


def check_pip(dockerfile: Dockerfile) -> Iterator[Problem]:
    for stage in dockerfile.stages:
        no_cache_env = stage.environment.get("PIP_NO_CACHE_DIR", "").lower() in {"1", "true", "off"}
        for instruction, text in _run_commands(stage):
            if re.search(r"\bpip3?\s+install\b|-m\s+pip\s+install\b", text) and not (
                "--no-cache-dir" in text or no_cache_env
            ):
                yield Problem(
                    dockerfile.path, instruction.line, "DF005", "pip install without --no-cache-dir"
                )


def check_healthcheck(dockerfile: Dockerfile, image: str) -> Iterator[Problem]:
    if image not in SERVERS:
        return
    try:
        command = dockerfile.healthcheck
    except ValueError as error:
        yield Problem(dockerfile.path, dockerfile.final.line, "DF006", str(error))
        return
    if command is None:
        yield Problem(
            dockerfile.path, dockerfile.final.line, "DF006", "a server without HEALTHCHECK"
        )
    elif command[0] in {"curl", "wget"}:
        yield Problem(
            dockerfile.path, dockerfile.final.line, "DF006", f"HEALTHCHECK needs {command[0]}"
        )


def check_exec_form(dockerfile: Dockerfile) -> Iterator[Problem]:
    final = dockerfile.final
    entrypoint = final.last("ENTRYPOINT")
    if entrypoint is None:
        yield Problem(dockerfile.path, final.line, "DF007", "the final stage has no ENTRYPOINT")
    for instruction in (entrypoint, final.last("CMD")):
        if instruction is not None and instruction.exec_form is None:
            yield Problem(
                dockerfile.path,
                instruction.line,
                "DF007",
                f"{instruction.keyword} not in exec form",
            )


def check_secrets(dockerfile: Dockerfile) -> Iterator[Problem]:
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword not in {"ENV", "ARG"}:
                continue
            for name in pairs(instruction.arguments):
                if SECRET_NAME.search(name):
                    yield Problem(
                        dockerfile.path,
                        instruction.line,
                        "DF008",
                        f"{instruction.keyword} {name} looks like a secret (it stays in the image)",
                    )


def check_copy_sources(
    dockerfile: Dockerfile, context: Path = REPOSITORY, ignore: DockerIgnore | None = None
) -> Iterator[Problem]:
    ignore = ignore or DockerIgnore.load(context / ".dockerignore")
    for _, instruction, flags, sources, _ in dockerfile.copies():
        if any(flag.startswith("--from") for flag in flags):
            continue
        for source in sources:
            if re.match(r"(?i)[a-z]+://|git@", source):
                continue  # a URL: DF003's business
            if "$" in source:
                yield Problem(
                    dockerfile.path, instruction.line, "DF009", f"unresolved source {source}"
                )
            elif not sent_files(context, source, ignore):
                yield Problem(
                    dockerfile.path,
                    instruction.line,
                    "DF009",
                    f"{source} does not exist in the repository or is excluded by .dockerignore",
                )


def check_final_stage_is_lean(dockerfile: Dockerfile) -> Iterator[Problem]:
    if len(dockerfile.stages) < 2:
        yield Problem(dockerfile.path, 1, "DF010", "not a multi-stage build")
        return
    final = dockerfile.final
    if not any(f.startswith("--from") for _, i, flags, _, _ in dockerfile.copies() for f in flags):
        yield Problem(
            dockerfile.path,
            final.line,
            "DF010",
            "the final stage copies nothing from a build stage",
        )
    for instruction, text in _run_commands(final):
        if re.search(r"\bpip3?\s+install\b|-m\s+pip\s+install\b", text):
            yield Problem(
                dockerfile.path, instruction.line, "DF010", "pip install in the final stage"
            )
        if re.search(r"\bapt(-get)?\s+(\S+\s+)*install\b", text) and COMPILERS.search(text):
            yield Problem(
                dockerfile.path, instruction.line, "DF010", "a compiler in the final stage"
            )


def check_labels(dockerfile: Dockerfile) -> Iterator[Problem]:
    labels = dockerfile.labels
    for name in REQUIRED_LABELS:
        if not labels.get(name):
            yield Problem(dockerfile.path, dockerfile.final.line, "DF011", f"label {name} missing")


def check_writable_paths(dockerfile: Dockerfile, image: str) -> Iterator[Problem]:
    """Python images: every VOLUME is created and owned by the USER; no .pyc written at run time."""
    if not dockerfile.final.base.startswith("python:"):
        return
    final = dockerfile.final
    if final.environment.get("PYTHONDONTWRITEBYTECODE") != "1":
        yield Problem(dockerfile.path, final.line, "DF012", "PYTHONDONTWRITEBYTECODE=1 not set")
    if not dockerfile.volumes:
        yield Problem(dockerfile.path, final.line, "DF012", "no VOLUME for the writable data")
    uid = (dockerfile.user or "").split(":")[0]
    runs = [text for _, text in _run_commands(final)]
    for volume in dockerfile.volumes:
        if not any(
            re.search(rf"chown (-R )?{uid}(:\d+)? .*{re.escape(volume)}\b", t) for t in runs
        ):
            yield Problem(
                dockerfile.path, final.line, "DF012", f"VOLUME {volume} not owned by {uid}"
            )
    if image in SERVERS and not dockerfile.exposed_ports:
        yield Problem(dockerfile.path, final.line, "DF012", "a server without EXPOSE")


def check(dockerfile: Dockerfile, image: str) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (
        check_pinned_bases,
        check_user,
        check_add,
        check_apt,
        check_pip,
        check_exec_form,
        check_secrets,
        check_copy_sources,
        check_final_stage_is_lean,
        check_labels,
    ):
        problems += rule(dockerfile)
    problems += check_healthcheck(dockerfile, image)
    problems += check_writable_paths(dockerfile, image)
    return problems


def image_of(path: Path) -> str:
    return next(
        (name for name, known in DOCKERFILES.items() if known == path.resolve()), path.parent.name
    )


def main(arguments: Iterable[str]) -> int:
    paths = [Path(a).resolve() for a in arguments] or list(DOCKERFILES.values())
    problems = [p for path in paths for p in check(parse(path), image_of(path))]
    for problem in problems:
        sys.stdout.write(f"{problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
