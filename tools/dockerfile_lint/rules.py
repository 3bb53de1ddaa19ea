"""The house rules for our images: hadolint's spirit plus what hadolint cannot know about this
repository (numeric non-root user, COPY sources that exist and survive `.dockerignore`,
HEALTHCHECK on the servers). Each rule yields `Problem`s with a rule id (DF001-DF012).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dockerfile_lint.dockerignore import DockerIgnore, sent_files
from dockerfile_lint.parser import Dockerfile, Instruction, Stage, pairs

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
