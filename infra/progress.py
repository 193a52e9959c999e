"""How deploy and destroy report progress: named phases, each with live detail and a result line.

The CLI renders this with rich (``cli/progress.py``); :class:`PlainProgress` writes
plain lines (tests, logs, library use).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["Phase", "PlainProgress", "Progress"]


class Phase(Protocol):
    """One running phase."""

    def update(self, text: str) -> None:
        """The latest detail (a line of a tool's output, a step), replacing the last one."""

    def done(self, summary: str) -> None:
        """The phase's outcome, shown after its title once it ends."""


class Progress(Protocol):
    """What a long command reports."""

    def phase(self, title: str) -> AbstractContextManager[Phase]:
        """A phase: its result is the last ``done`` given (an exception marks it failed)."""

    def note(self, text: str) -> None:
        """A line worth reading that is not a phase."""

    def warn(self, text: str) -> None:
        """Something the user should act on."""


class _PlainPhase:
    def __init__(self) -> None:
        self.summary = ""

    def update(self, text: str) -> None:
        pass

    def done(self, summary: str) -> None:
        self.summary = summary


class PlainProgress:
    """Phases as ``title: outcome`` lines through ``echo``."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.echo = echo

    def phase(self, title: str) -> AbstractContextManager[Phase]:
        return self._phase(title)

    @contextmanager
    def _phase(self, title: str) -> Iterator[Phase]:
        phase = _PlainPhase()
        try:
            yield phase
        except BaseException:
            self.echo(f"{title}: failed")
            raise
        self.echo(f"{title}: {phase.summary or 'done'}")

    def note(self, text: str) -> None:
        self.echo(text)

    def warn(self, text: str) -> None:
        self.echo(f"Warning: {text}")
