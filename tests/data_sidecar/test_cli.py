"""The command as job containers run it: a real subprocess against the real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from data_sidecar.cli import main
from tests.data_sidecar.builders import make_zip
from tests.data_sidecar.storage_server import FakeStorage

FAST_RETRIES = {
    "DATA_SIDECAR_ATTEMPTS": "2",
    "DATA_SIDECAR_INITIAL_WAIT": "0.01",
    "DATA_SIDECAR_MAX_WAIT": "0.01",
    "DATA_SIDECAR_READ_TIMEOUT": "5",
}


def run_sidecar(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("DATA_SIDECAR_")
    }
    environment.update(FAST_RETRIES)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "data_sidecar", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def write_manifest(path: Path, **fields: Any) -> Path:
    fields.setdefault("job_id", "job-cli")
    path.write_text(json.dumps(fields))
    return path


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def test_stage_in_command_stages_inputs_and_exits_0(
    storage: FakeStorage, workspace: Path, tmp_path: Path
) -> None:
    manifest_file = write_manifest(
        tmp_path / "manifest.json",
        inputs=[
            {
                "id": "dataset",
                "kind": "archive",
                "url": storage.put_object("/dataset.zip", make_zip({"a.txt": b"a"})),
                "max_size": 1000,
            }
        ],
        literals={"message": "hi"},
        log_url=storage.url("/log"),
    )

    result = run_sidecar(
        "stage-in", "--manifest", str(manifest_file), "--workspace", str(workspace)
    )

    assert result.returncode == 0, result.stderr
    assert (workspace / "inputs" / "dataset" / "a.txt").read_bytes() == b"a"
    assert json.loads((workspace / "inputs.json").read_text()) == {"message": "hi"}
    assert "s3cr3t" not in result.stderr
    assert "http://127.0.0.1" in result.stderr, "the log names the source without its signature"


def test_stage_in_command_fails_with_one_clear_line_on_404(
    storage: FakeStorage, workspace: Path, tmp_path: Path
) -> None:
    manifest_file = write_manifest(
        tmp_path / "manifest.json",
        inputs=[{"id": "doc", "kind": "file", "url": storage.url("/nope"), "max_size": 10}],
        log_url=storage.url("/log"),
    )

    result = run_sidecar(
        "stage-in", "--workspace", str(workspace), env={"DATA_SIDECAR_MANIFEST": str(manifest_file)}
    )

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "stage-in of job job-cli failed: input 'doc'" in line
    assert "HTTP 404" in line
    assert "s3cr3t" not in result.stderr
    assert "Traceback" not in result.stderr
    assert storage.count("GET", "/nope") == 1


def test_push_out_command_reports_missing_outputs_and_exits_0(
    storage: FakeStorage, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "echo").write_text("hello")
    log_file = tmp_path / "job.log"
    log_file.write_text("worker said hello\n")
    manifest_file = write_manifest(
        tmp_path / "manifest.json",
        outputs=[
            {"id": "echo", "kind": "file", "url": storage.url("/out/echo")},
            {"id": "listing", "kind": "file", "url": storage.url("/out/listing")},
        ],
        log_url=storage.url("/log"),
        report_url=storage.url("/report"),
    )

    result = run_sidecar(
        "push-out",
        "--manifest",
        str(manifest_file),
        "--workspace",
        str(workspace),
        "--log",
        str(log_file),
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["pushed"]) == {"echo"}
    assert report["missing"] == ["listing"]
    assert report["log_pushed"] is True
    assert json.loads(storage.objects["/report"]) == report
    assert storage.objects["/out/echo"] == b"hello"
    assert storage.objects["/log"] == b"worker said hello\n"


def test_push_out_command_exits_1_when_an_upload_fails(
    storage: FakeStorage, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "echo").write_text("hello")
    manifest_file = write_manifest(
        tmp_path / "manifest.json",
        outputs=[{"id": "echo", "kind": "file", "url": "http://127.0.0.1:9/out/echo?sig=s3cr3t"}],
        log_url=storage.url("/log"),
    )

    result = run_sidecar(
        "push-out", "--manifest", str(manifest_file), "--workspace", str(workspace)
    )

    assert result.returncode == 1
    assert json.loads(result.stdout)["failed"].keys() == {"echo"}
    summary = result.stderr.splitlines()[-1]
    assert " ERROR " in summary
    assert (
        "push-out of job job-cli failed: output 'echo': PUT http://127.0.0.1:9/out/echo" in summary
    )
    assert "s3cr3t" not in result.stderr


def test_missing_or_invalid_manifest_exits_2(tmp_path: Path) -> None:
    no_manifest = run_sidecar("stage-in", "--workspace", str(tmp_path))
    assert no_manifest.returncode == 2
    assert "DATA_SIDECAR_MANIFEST" in no_manifest.stderr

    unreadable = run_sidecar("push-out", "--manifest", str(tmp_path / "absent.json"))
    assert unreadable.returncode == 2
    assert "cannot read the manifest" in unreadable.stderr

    invalid = write_manifest(tmp_path / "bad.json", inputs="not a list", log_url="http://x/l")
    result = run_sidecar("stage-in", "--manifest", str(invalid), "--workspace", str(tmp_path))
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert "invalid manifest" in line
    assert "inputs" in line


def test_bad_retry_setting_exits_2(tmp_path: Path) -> None:
    manifest_file = write_manifest(tmp_path / "m.json", log_url="http://x/l")
    result = run_sidecar(
        "stage-in", "--manifest", str(manifest_file), env={"DATA_SIDECAR_ATTEMPTS": "zero"}
    )
    assert result.returncode == 2
    assert "DATA_SIDECAR_ATTEMPTS" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = run_sidecar("sideways")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_console_script_is_installed_next_to_the_interpreter(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "data-sidecar"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "stage-in" in result.stdout
    assert "push-out" in result.stdout


def test_main_takes_the_workspace_from_the_environment(
    storage: FakeStorage, tmp_path: Path
) -> None:
    workspace = tmp_path / "from-env"
    manifest_file = write_manifest(
        tmp_path / "m.json", literals={"n": 1}, log_url=storage.url("/l")
    )
    code = main(
        ["stage-in", "--manifest", str(manifest_file)], {"WORKFLOW_WORKSPACE": str(workspace)}
    )
    assert code == 0
    assert json.loads((workspace / "inputs.json").read_text()) == {"n": 1}
