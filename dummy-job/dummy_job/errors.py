"""Errors of the example workers.

JobInputError       a required input is missing or an input has an invalid value (exit 2)
"""

from __future__ import annotations


class JobInputError(Exception):
    """A required input is missing, or an input's value is not acceptable."""

    def __init__(self, input_id: str, reason: str) -> None:
        super().__init__(f"input {input_id!r}: {reason}")
        self.input_id = input_id
