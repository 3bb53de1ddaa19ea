"""Reusable test parts: what tests and benchmarks start and drive, never tests themselves.

Imported by `tests/` and `bench/`; imports neither. Not installed by the services' images.
"""
