"""Names the provisioner's namespace objects and the workflow-api's job runner must agree on.

The provisioner creates the job ServiceAccount and NetworkPolicies that select job pods by
`JOB_LABEL_KEY: JOB_LABEL_VALUE`; the job runner creates the Jobs whose pods carry that label and
run as that ServiceAccount. Both import these constants, so a rename cannot break one side only.
"""

from __future__ import annotations

JOB_LABEL_KEY = "workflow.middle-layer/role"
JOB_LABEL_VALUE = "job"
JOB_ID_LABEL_KEY = "workflow.middle-layer/job-id"
JOB_SERVICE_ACCOUNT_NAME = "workflow-job"
