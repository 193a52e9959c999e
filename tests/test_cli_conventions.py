"""The CLI's conventions, command by command: ``--json`` on every read command, shell
completion, and one example in every ``--help``."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from llamaws.cli.main import app

READ_COMMANDS = [
    ("status",),
    ("logs",),
    ("keys", "list"),
    ("secrets", "list"),
    ("tokens", "list"),
    ("tokens", "describe"),
]
"""Commands that only read: each takes ``--json``."""


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        found = command.commands.get(name)
        assert found is not None, f"no command {' '.join(path)}"
        command = found
    return command


@pytest.mark.parametrize("path", READ_COMMANDS, ids=" ".join)
def test_read_command_takes_json(path: tuple[str, ...]) -> None:
    options = {opt for param in _command(path).params for opt in getattr(param, "opts", [])}
    assert "--json" in options


def test_shell_completion_is_offered() -> None:
    options = {opt for param in _command(()).params for opt in getattr(param, "opts", [])}
    assert {"--install-completion", "--show-completion"} <= options
