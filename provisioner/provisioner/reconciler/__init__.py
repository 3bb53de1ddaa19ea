"""The reconciler: one thread moving grants and consumers one persisted step at a time."""
