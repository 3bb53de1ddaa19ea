"""The Kubernetes deployer: each consumer's workflow-api in a namespace of its own."""
