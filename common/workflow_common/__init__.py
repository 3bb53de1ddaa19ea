"""Infrastructure both services use the same way: clocks and database helpers, private files,
process identity, the sandbox, request limits, settings helpers and the S3 and Kubernetes
clients, and the one taxonomy of errors for work that is retried.

Depends on `workflow_contracts` at most, never on a service: the provisioner and workflow-api
depend on this package and on `workflow_contracts`, never on each other.
"""
