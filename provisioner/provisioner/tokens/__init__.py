"""Tokens the provisioner issues: consumer tokens and admin tokens for the workflow-apis."""
