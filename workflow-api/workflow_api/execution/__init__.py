"""Running jobs: the JobRunner protocol, the local runner, and the JobManager that queues."""
