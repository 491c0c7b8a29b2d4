"""User-facing errors: what went wrong, where, and how to fix it. The CLI turns these into exit 2."""

from __future__ import annotations


class LatbenchError(Exception):
    """An error caused by input the user can fix (not a bug in latbench)."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"; {self.hint}"
        return text


class SuiteError(LatbenchError):
    """A suite file that cannot be read or does not validate."""


class ResultsError(LatbenchError):
    """A results file that is missing, unreadable or of the wrong schema."""


class DeviceError(LatbenchError):
    """A device that was asked for but is not available."""
