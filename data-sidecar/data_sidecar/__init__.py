"""The data-sidecar: stages a job's inputs in and pushes its outputs out, through signed URLs only.

`stage_in` and `push_out` are the library entry points (the local job runner calls them in a
thread); `data-sidecar stage-in|push-out` is the same as a command for job containers, and
`data-sidecar follow` runs beside a Kubernetes job's worker (progress, then push-out on SIGTERM).
"""

from data_sidecar.push_out import PushOutOutcome, push_out, run_push_out
from data_sidecar.stage_in import stage_in
from data_sidecar.transport import TransferPolicy

__all__ = ["PushOutOutcome", "TransferPolicy", "push_out", "run_push_out", "stage_in"]
