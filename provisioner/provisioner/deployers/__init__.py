"""Deployers: how a consumer's workflow-api is brought up and torn down (`local`, `kubernetes`)."""
