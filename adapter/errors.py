"""One error hierarchy: every member carries an HTTP status and a one-line hint.

The HTTP layer renders ``{"detail": message}`` like the reference server; the CLI
prints ``Error: message`` and exits 1.
"""

from __future__ import annotations

__all__ = ["ConfigError", "LlamawsError", "MissingModuleError", "WorkflowLoadError"]


class LlamawsError(Exception):
    """Base of llamaws's own errors: a message a person can act on."""

    status_code: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # Two sentences, punctuated: "port 4501 is already in use. Stop the other ...".
        end = "" if self.message.endswith((".", "!", "?", ":")) else "."
        return f"{self.message}{end} {self.hint}"


class ConfigError(LlamawsError):
    """The deployment config is missing, unreadable or invalid."""

    status_code = 400


class WorkflowLoadError(LlamawsError):
    """A configured ``module:attr`` could not be imported or is not a workflow."""


class MissingModuleError(WorkflowLoadError):
    """A workflow module imports a module that is not installed.

    ``module`` is the missing module, ``distribution`` the package that provides it
    (the one to add to the app's dependencies), as far as it can be told.
    """

    def __init__(self, message: str, *, module: str, distribution: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.module = module
        self.distribution = distribution
