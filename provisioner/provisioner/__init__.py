"""The provisioner: EDC HTTP provisioning, per-consumer workflow-apis, grants, tokens."""
