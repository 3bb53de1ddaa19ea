"""How a job's end is judged from its runner's Outcome (`execution/outcomes.py`), pure."""

from __future__ import annotations

from workflow_api.db import JobStatus
from workflow_api.execution.outcomes import judge_outcome
from workflow_api.execution.runner import Outcome
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.manifest import PushedOutput, PushOutReport

ASSET = WorkflowAsset.model_validate(
    {
        "id": "writer",
        "title": "W",
        "execution": {"image": "x"},
        "outputs": [
            {"id": "table", "media_type": "text/csv"},
            {"id": "folder", "kind": "directory"},
        ],
    }
)
PUSHED = {"table": PushedOutput(size=3, sha256="ab"), "folder": PushedOutput(size=9, sha256="cd")}


def test_a_clean_exit_with_every_output_pushed_is_successful_with_its_results() -> None:
    verdict = judge_outcome(ASSET, Outcome(0, None, PushOutReport(pushed=PUSHED)))
    assert verdict.status is JobStatus.SUCCESSFUL
    assert verdict.message == "finished"
    assert verdict.results == {
        "table": {"size": 3, "sha256": "ab", "media_type": "text/csv"},
        "folder": {"size": 9, "sha256": "cd", "media_type": "application/zip"},
    }


def test_a_quota_refusal_comes_first_and_keeps_no_results() -> None:
    report = PushOutReport(pushed=PUSHED, refused="outputs need 12 bytes, 2 are free")
    verdict = judge_outcome(ASSET, Outcome(1, "the job timed out after 5 s", report))
    assert (verdict.status, verdict.message, verdict.results) == (
        JobStatus.FAILED,
        "outputs need 12 bytes, 2 are free",
        None,
    )


def test_the_runners_error_fails_the_job_but_keeps_what_was_pushed() -> None:
    verdict = judge_outcome(
        ASSET, Outcome(None, "stage-in failed: no", PushOutReport(pushed=PUSHED))
    )
    assert verdict.status is JobStatus.FAILED
    assert verdict.message == "stage-in failed: no"
    assert verdict.results is not None and set(verdict.results) == {"table", "folder"}


def test_a_nonzero_exit_fails_the_job_with_its_code_and_the_note_in_parentheses() -> None:
    outcome = Outcome(3, None, PushOutReport(pushed=PUSHED), note="sandbox: bubblewrap")
    verdict = judge_outcome(ASSET, outcome)
    assert verdict.status is JobStatus.FAILED
    assert verdict.message == "the worker exited with code 3 (sandbox: bubblewrap)"


def test_no_report_failed_uploads_and_missing_outputs_each_fail_the_job() -> None:
    assert judge_outcome(ASSET, Outcome(0, None, None)).message == "the outputs were not stored"
    failed = PushOutReport(pushed={"table": PUSHED["table"]}, failed={"folder": "HTTP 500"})
    assert judge_outcome(ASSET, Outcome(0, None, failed)).message == (
        "outputs could not be stored: 'folder' (HTTP 500)"
    )
    missing = PushOutReport(pushed={"table": PUSHED["table"]}, missing=["folder"])
    verdict = judge_outcome(ASSET, Outcome(0, None, missing))
    assert verdict.message == "declared outputs were not produced: 'folder'"
    assert verdict.results == {"table": {"size": 3, "sha256": "ab", "media_type": "text/csv"}}


def test_an_output_the_asset_does_not_declare_is_left_out_of_the_results() -> None:
    report = PushOutReport(pushed={**PUSHED, "stray": PushedOutput(size=1, sha256="ef")})
    verdict = judge_outcome(ASSET, Outcome(0, None, report))
    assert verdict.results is not None and "stray" not in verdict.results
