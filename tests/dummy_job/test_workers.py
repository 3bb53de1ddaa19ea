"""Each worker as a real subprocess in a real workspace."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from tests.dummy_job.conftest import JobWorkspace, RunJob
from workflow_contracts.workspace import parse_progress_line


def percents(workspace: JobWorkspace) -> list[int]:
    parsed = [parse_progress_line(line) for line in workspace.progress()]
    assert all(item is not None for item in parsed), workspace.progress()
    return [item[0] for item in parsed if item is not None]


def write_literals(workspace: JobWorkspace, **literals: object) -> None:
    (workspace.root / "inputs.json").write_text(json.dumps(literals), encoding="utf-8")


def test_dummy_sleeps_reports_progress_and_writes_a_summary(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    write_literals(job_workspace, duration=0.6, fail=False)

    started = time.monotonic()
    result = run_job("dummy")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed >= 0.6
    summary = (job_workspace.outputs / "result").read_text(encoding="utf-8")
    assert "duration: 0.6 s" in summary
    assert "fail: false" in summary
    finished = next(line for line in summary.splitlines() if line.startswith("finished: "))
    assert datetime.fromisoformat(finished.removeprefix("finished: ")).tzinfo is not None
    progress = percents(job_workspace)
    assert progress[0] == 0
    assert progress[-1] == 100
    assert progress == sorted(progress)
    assert len(progress) >= 3
    assert "progress" in result.stdout
    assert result.stderr == ""


def test_dummy_with_fail_writes_its_summary_then_exits_3(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    result = run_job("dummy", {"INPUT_DURATION": "0", "INPUT_FAIL": "true"})

    assert result.returncode == 3
    assert "failing on purpose" in result.stderr
    assert "fail: true" in (job_workspace.outputs / "result").read_text()
    assert 100 not in percents(job_workspace)


@pytest.mark.parametrize(
    ("literals", "env", "message"),
    [
        ({"duration": 5000}, {}, "'duration': must be between 0 and 3600"),
        ({"duration": "soon"}, {}, "'duration': must be a number"),
        ({}, {"INPUT_FAIL": "maybe"}, "'fail': must be true or false"),
    ],
)
def test_dummy_refuses_invalid_inputs_with_exit_2(
    run_job: RunJob,
    job_workspace: JobWorkspace,
    literals: dict[str, object],
    env: dict[str, str],
    message: str,
) -> None:
    write_literals(job_workspace, **literals)
    result = run_job("dummy", env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (job_workspace.outputs / "result").exists()


def test_dummy_spawns_a_child_process_and_reaps_it(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    write_literals(job_workspace, duration=0.3, spawn_child=True)
    result = run_job("dummy")
    assert result.returncode == 0, result.stderr
    match = re.search(r"started child process (\d+)", result.stdout)
    assert match is not None, result.stdout
    assert not Path(f"/proc/{match.group(1)}").exists()


def test_dummy_honours_a_separate_outputs_directory(
    run_job: RunJob, job_workspace: JobWorkspace, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = run_job("dummy", {"INPUT_DURATION": "0", "WORKFLOW_OUTPUTS_DIR": str(elsewhere)})
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "result").is_file()
    assert not (job_workspace.outputs / "result").exists()


def stage_input_dummy_inputs(workspace: JobWorkspace, settings: str | None) -> dict[str, bytes]:
    dataset = {"a.txt": b"alpha\n", "nested/deeper/b.bin": bytes(range(256)), "c.csv": b"x,y\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in dataset.items():
            bundle.writestr(name, data)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as bundle:
        bundle.extractall(workspace.inputs / "dataset")
    (workspace.inputs / "document").write_text("Hello, wörld!\nsecond line\n", encoding="utf-8")
    if settings is not None:
        (workspace.inputs / "settings").write_text(settings, encoding="utf-8")
    return dataset


def test_input_dummy_lists_and_transforms_its_inputs(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    dataset = stage_input_dummy_inputs(job_workspace, "GREETING=Hi there\nREPEAT=3\n")

    result = run_job("input-dummy", {"GREETING": "Hi there", "REPEAT": "3"})

    assert result.returncode == 0, result.stderr
    listing = (job_workspace.outputs / "listing").read_text(encoding="utf-8")
    document_digest = hashlib.sha256((job_workspace.inputs / "document").read_bytes()).hexdigest()
    assert f"sha256 {document_digest}" in listing
    assert "dataset: directory, 3 files" in listing
    for name, data in dataset.items():
        assert f"  {name}: {len(data)} bytes" in listing
    assert "settings: file" in listing
    transformed = job_workspace.outputs / "transformed"
    upper = (transformed / "document.upper.txt").read_text(encoding="utf-8")
    assert upper == "HELLO, WÖRLD!\nSECOND LINE\n"
    for name, data in dataset.items():
        checksum = (transformed / "checksums" / f"{name}.sha256").read_text()
        assert checksum == f"{hashlib.sha256(data).hexdigest()}  {name}\n"
    assert (transformed / "greeting.txt").read_text() == "Hi there\n" * 3
    progress = percents(job_workspace)
    assert progress[-1] == 100
    assert progress == sorted(progress)


def test_input_dummy_reads_the_settings_file_when_no_variables_are_set(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    stage_input_dummy_inputs(job_workspace, "# settings\nexport GREETING='Moin'\nREPEAT=2\n")
    result = run_job("input-dummy")
    assert result.returncode == 0, result.stderr
    greeting = job_workspace.outputs / "transformed" / "greeting.txt"
    assert greeting.read_text() == "Moin\nMoin\n"


def test_input_dummy_without_settings_uses_defaults(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    stage_input_dummy_inputs(job_workspace, None)
    result = run_job("input-dummy")
    assert result.returncode == 0, result.stderr
    assert (job_workspace.outputs / "transformed" / "greeting.txt").read_text() == "Hello\n"
    assert "settings: not given" in (job_workspace.outputs / "listing").read_text()


@pytest.mark.parametrize(
    ("missing", "expected"), [("document", "a file"), ("dataset", "an extracted archive")]
)
def test_input_dummy_without_a_required_input_exits_2(
    run_job: RunJob, job_workspace: JobWorkspace, missing: str, expected: str
) -> None:
    stage_input_dummy_inputs(job_workspace, None)
    path = job_workspace.inputs / missing
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()
    else:
        path.unlink()

    result = run_job("input-dummy")

    assert result.returncode == 2
    assert f"input {missing!r}: is required: expected {expected}" in result.stderr
    assert not (job_workspace.outputs / "listing").exists()


def test_input_dummy_refuses_a_bad_repeat(run_job: RunJob, job_workspace: JobWorkspace) -> None:
    stage_input_dummy_inputs(job_workspace, None)
    result = run_job("input-dummy", {"REPEAT": "many"})
    assert result.returncode == 2
    assert "REPEAT must be a whole number" in result.stderr


@pytest.mark.parametrize(
    "message", ["hello", "  spaced  out  ", "line one\nline two\n", "ünïcødé ✓ 🚀", ""]
)
def test_echo_writes_the_message_exactly(
    run_job: RunJob, job_workspace: JobWorkspace, message: str
) -> None:
    write_literals(job_workspace, message=message)
    result = run_job("echo")
    assert result.returncode == 0, result.stderr
    assert (job_workspace.outputs / "echo").read_bytes() == message.encode("utf-8")


def test_echo_takes_the_message_from_the_environment_and_pauses(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    started = time.monotonic()
    result = run_job("echo", {"INPUT_MESSAGE": "from env", "INPUT_PAUSE": "0.3"})
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.3
    assert (job_workspace.outputs / "echo").read_text() == "from env"
    assert percents(job_workspace)[-1] == 100


def test_echo_prefers_inputs_json_over_the_environment(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    write_literals(job_workspace, message="from file")
    result = run_job("echo", {"INPUT_MESSAGE": "from env"})
    assert result.returncode == 0, result.stderr
    assert (job_workspace.outputs / "echo").read_text() == "from file"


def test_echo_without_a_message_exits_2(run_job: RunJob, job_workspace: JobWorkspace) -> None:
    result = run_job("echo")
    assert result.returncode == 2
    assert "input 'message': is required" in result.stderr
    assert not (job_workspace.outputs / "echo").exists()


def test_echo_refuses_a_message_that_is_not_a_string(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    write_literals(job_workspace, message=42)
    result = run_job("echo")
    assert result.returncode == 2
    assert "must be a string" in result.stderr


def test_a_broken_inputs_json_is_an_input_error(
    run_job: RunJob, job_workspace: JobWorkspace
) -> None:
    (job_workspace.root / "inputs.json").write_text("{not json", encoding="utf-8")
    result = run_job("echo", {"INPUT_MESSAGE": "x"})
    assert result.returncode == 2
    assert "inputs.json" in result.stderr


def test_noop_does_nothing_and_exits_0(run_job: RunJob, job_workspace: JobWorkspace) -> None:
    result = run_job("noop")
    assert result.returncode == 0
    assert list(job_workspace.outputs.iterdir()) == []
    assert job_workspace.progress() == []


def test_unknown_command_is_a_usage_error(run_job: RunJob) -> None:
    result = run_job("explode")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
