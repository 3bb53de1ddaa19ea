"""Real EDC connectors (0.15.1 legacy, 0.18.0 data plane) with a real provisioner, end to end."""
