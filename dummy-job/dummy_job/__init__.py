"""Example workers for the workflow middle layer: dummy, input-dummy, echo and noop.

They follow the job container contract (see `workflow_contracts.workspace`) using the standard
library only: inputs under `inputs/`, literals in `inputs.json` and `INPUT_<ID>` variables, outputs
under `outputs/`, progress lines in the file named by `WORKFLOW_PROGRESS_FILE`.
"""
