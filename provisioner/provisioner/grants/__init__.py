"""Grants and consumers: the tables, their states, and the one definition of a live grant."""
