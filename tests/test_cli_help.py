"""``llamaws --version``, ``-h``, and every command's help: its defaults and an example."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import typer

from llamaws.cli.main import app

from .support import ROOT


def commands() -> Iterator[tuple[str, Any]]:
    """Every command of the ``llamaws`` tree: (its path, its click command)."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        children = getattr(command, "commands", None)
        if children:
            for name, child in sorted(children.items()):
                yield from walk(child, [*path, name])
        else:
            yield " ".join(path), command

    yield from walk(typer.main.get_command(app), [])


def llamaws(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )  # fmt: skip


def test_version_prints_the_installed_version() -> None:
    done = llamaws("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"llamaws {version('llamaws')}"


def test_dash_h_is_help() -> None:
    short, long = llamaws("-h"), llamaws("--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and "serve" in short.stdout


@pytest.mark.parametrize("path", [path for path, _ in commands()])
def test_every_command_help_shows_defaults_and_an_example(path: str) -> None:
    command = dict(commands())[path]
    done = llamaws(*path.split(), "-h")
    assert done.returncode == 0, done.stderr
    assert "Example:" in done.stdout and f"$ llamaws {path}" in done.stdout
    shown = [
        param.name
        for param in command.params
        if param.default not in (None, False, "") and not getattr(param, "is_flag", False)
    ]
    assert done.stdout.count("[default:") >= len(shown), shown


def test_usage_error_is_one_line_with_exit_code_2() -> None:
    done = llamaws("serve", "--no-such-flag")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: No such option: --no-such-flag")
    assert line.endswith("See `llamaws serve --help`.")
