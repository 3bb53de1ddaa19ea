"""The local deployer: one supervised workflow-api process per consumer on this machine."""
