"""Errors that say what was wrong and where (row, line, byte), for manifests and messages alike.

The class names are part of the contract: the state machine does not retry them.
"""

from __future__ import annotations


class LocatedError(ValueError):
    """``reason`` in words, ``where`` as {"row": 3, "line": 4, "byte": 120} (only what is known)."""

    def __init__(self, reason: str, **where: int | str | None):
        self.reason = reason
        self.where = {k: v for k, v in where.items() if v is not None}
        place = ", ".join(f"{k} {v}" for k, v in self.where.items())
        super().__init__(f"{reason} ({place})" if place else reason)


class InputValidationError(LocatedError):
    """The user's input cannot be explained as it is."""


class ClarifyOutputError(LocatedError):
    """Clarify's output is missing, truncated or malformed."""
