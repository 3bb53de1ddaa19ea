"""Real EDC connectors for tests: the built runtimes (`runtimes`), one connector on loopback
(`connectors`), a provisioner as a process (`provisioner_process`), and a provider/consumer pair
with that provisioner driven as a real consumer would (`dataspace`)."""
