"""One error hierarchy: every member carries an HTTP status and a one-line hint.

The HTTP layer renders ``{"detail": message}`` like the reference server; the CLI
prints ``Error: message`` and exits 1.
"""

from __future__ import annotations

__all__ = ["ConfigError", "LlamawsError", "WorkflowLoadError"]


class LlamawsError(Exception):
    """Base of llamaws's own errors: a message a person can act on."""

    status_code: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(LlamawsError):
    """The deployment config is missing, unreadable or invalid."""

    status_code = 400


class WorkflowLoadError(LlamawsError):
    """A configured ``module:attr`` could not be imported or is not a workflow."""
