"""HTTP routes of the provisioner, one module per audience."""
