"""The Kubernetes job runner: each job as one batch/v1 Job in the consumer's namespace."""
