"""The local job runner: workers as sandboxed process groups on this host."""
