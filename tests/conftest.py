"""Shared fixtures: example apps copied to a temp dir, emulators on free ports."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import EXAMPLES, Emulator, free_port


@pytest.fixture
def example_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Copy ``examples/<name>`` into a temp dir (so its workflows.db is private)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(
            EXAMPLES / name,
            target,
            ignore=shutil.ignore_patterns(
                "node_modules", "workflows.db*", ".emulator-*", ".llamaws", "cdk.out"
            ),
        )
        return target

    return copy


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Start ``llamaws serve`` processes; all are stopped at teardown."""
    started: list[Emulator] = []

    def start(app_dir: Path, *args: str, wait: bool = True, **env: str) -> Emulator:
        emulator = Emulator(app_dir, free_port(), list(args), dict(env))
        started.append(emulator)
        return emulator.start(wait=wait)

    yield start
    for emulator in started:
        emulator.stop()


from .engines import aws_env, dynamo_table_name, emulator_store_args, moto_server  # noqa: E402, F401
