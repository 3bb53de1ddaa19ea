"""How a job ends, judged from what its runner reports: status, message and results document.

The first failure that applies is the job's message: a quota refusal at push-out (its outputs
are deleted, so no results), the runner's own error (stage-in, timeout, ...), the worker's exit
code, a missing push-out report, outputs that could not be stored, declared outputs that were
not produced. The runner's `note` (how the worker was confined) is appended in parentheses.
"""

from __future__ import annotations

from typing import Any

from workflow_api.db import JobStatus
from workflow_api.execution.job_store import Verdict
from workflow_api.execution.runner import Outcome
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.manifest import PushOutReport


def judge_outcome(asset: WorkflowAsset, outcome: Outcome) -> Verdict:
    verdict = _decide(asset, outcome)
    if outcome.note:
        return Verdict(verdict.status, f"{verdict.message} ({outcome.note})", verdict.results)
    return verdict


def _decide(asset: WorkflowAsset, outcome: Outcome) -> Verdict:
    report = outcome.report
    results = _results(asset, report) if report is not None else None
    refused = report.refused if report is not None else None  # outputs deleted: see JobStorage
    failure = refused or outcome.error
    if failure is not None:
        return Verdict(JobStatus.FAILED, failure, None if refused else results)
    if outcome.exit_code != 0:
        return Verdict(
            JobStatus.FAILED, f"the worker exited with code {outcome.exit_code}", results
        )
    if report is None:
        return Verdict(JobStatus.FAILED, "the outputs were not stored", results)
    if report.failed:
        failed = ", ".join(f"{i!r} ({reason})" for i, reason in sorted(report.failed.items()))
        return Verdict(JobStatus.FAILED, f"outputs could not be stored: {failed}", results)
    if report.missing:
        missing = ", ".join(repr(i) for i in report.missing)
        return Verdict(JobStatus.FAILED, f"declared outputs were not produced: {missing}", results)
    return Verdict(JobStatus.SUCCESSFUL, "finished", results)


def _results(asset: WorkflowAsset, report: PushOutReport) -> dict[str, Any]:
    """The results document: size, digest and media type of each output pushed."""
    return {
        output_id: {
            "size": pushed.size,
            "sha256": pushed.sha256,
            "media_type": output.delivered_media_type,
        }
        for output_id, pushed in report.pushed.items()
        if (output := asset.output(output_id)) is not None
    }
