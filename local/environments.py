"""Each app's own Python environment, where its app server runs.

``<app>/.llamaws/venv`` holds exactly the set :func:`llamaws.builder.dependencies.resolve`
gives for the app on this machine (profile ``"local"``): the app's dependencies and
llamaws's runtime at llamaws's pinned versions, the same pins the Lambda bundle gets.
The ``llamaws`` CLI and the reload supervisor stay in llamaws's own environment; one
app's dependencies never change it or another app's.

Why ``.llamaws/venv`` and not the app's ``.venv`` (which ``llamactl`` syncs): the
``.venv`` belongs to the developer (dev tools, an IDE's interpreter); llamaws syncs
its environment *exactly* (``uv pip sync``) to the resolved set, which would remove
them. ``.llamaws/`` is llamaws's folder in the app already (the Lambda bundle is built
there) and is git-ignored.

The app server imports ``llamaws.adapter``, ``llamaws.local`` and ``llamaws.builder``
from the running llamaws (a ``.pth`` file adds a folder of links to them), so the CLI
and the app server always run the same llamaws code; their third-party imports come
from the environment.

An environment is reused when the fingerprint of its inputs (the app's dependencies and
``uv.lock``, llamaws's pins, the Python version) and the llamaws it links are unchanged:
that check reads a few files and runs nothing. ``--no-install`` uses the environment as
it is, and llamaws's own when the app has none yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llamaws.adapter.errors import LlamawsError

__all__ = [
    "LINKED_PACKAGES",
    "AppEnvironment",
    "current_environment",
    "ensure_environment",
    "environment_dir",
    "link_llamaws",
    "sync_environment",
]

LINKED_PACKAGES = ("adapter", "builder", "local")
"""The parts of llamaws the app server imports (not the CLI, not infra)."""
STATE_FILE = "llamaws-environment.json"
PTH_FILE = "_llamaws_link.pth"
LINK_DIR = "llamaws-link"

Say = Callable[[str], None]


@dataclass(frozen=True)
class AppEnvironment:
    """The interpreter an app server runs with."""

    python: Path
    """The environment's ``python`` (llamaws's own interpreter when ``own`` is False)."""
    path: Path | None
    """The environment's folder; None: llamaws's own environment."""
    created: bool = False
    """Whether this call created or changed it."""

    @property
    def own(self) -> bool:
        """Whether the app has its own environment (else it shares llamaws's)."""
        return self.path is not None


def environment_dir(app_dir: Path) -> Path:
    """``<app>/.llamaws/venv``."""
    return app_dir / ".llamaws" / "venv"


def current_environment(app_dir: Path) -> AppEnvironment:
    """The app's environment as it is (llamaws's own when the app has none): no checks."""
    venv = environment_dir(app_dir.resolve())
    python = _venv_python(venv)
    return AppEnvironment(python, venv) if python.exists() else AppEnvironment(
        Path(sys.executable), None
    )


def ensure_environment(
    app_dir: Path,
    *,
    install: bool,
    say: Say | None = None,
    before_change: Callable[[], None] | None = None,
) -> AppEnvironment:
    """The app's environment, created or brought up to date when ``install``.

    ``before_change`` runs before an existing environment is modified (stop what runs
    from it).
    """
    say = say or _say
    app_dir = app_dir.resolve()
    venv = environment_dir(app_dir)
    python = _venv_python(venv)
    if not install:
        if python.exists():
            return AppEnvironment(python, venv)
        return AppEnvironment(Path(sys.executable), None)
    from llamaws.builder.dependencies import resolve

    wanted = _state(app_dir)
    if python.exists() and _read_state(venv) == wanted:
        return AppEnvironment(python, venv)
    with _locked(app_dir / ".llamaws" / "venv.lock"):
        if python.exists() and _read_state(venv) == wanted:  # another llamaws did it
            return AppEnvironment(python, venv)
        started = time.monotonic()
        if before_change is not None:
            before_change()
        say(f"preparing the app's environment in {_shown(venv, app_dir)}")
        resolution = resolve(app_dir)
        for note in resolution.notes:
            say(note)
        _remove_state(venv)
        sync_environment(venv, resolution.text(), cwd=app_dir)
        _write_state(venv, wanted)
        say(
            f"the app's environment is ready ({len(resolution.requirements)} packages, "
            f"{time.monotonic() - started:.1f} s)"
        )
    return AppEnvironment(python, venv, created=True)


def sync_environment(venv: Path, requirements: str, *, cwd: Path) -> Path:
    """Make ``venv`` hold exactly ``requirements`` (a requirements.txt) and llamaws's link.

    Created with the interpreter llamaws runs on when missing (or of another version);
    returns its ``python``.
    """
    python = _venv_python(venv)
    if not python.exists() or not _same_python(venv):
        shutil.rmtree(venv, ignore_errors=True)
        _uv(["venv", "--quiet", "--python", _base_python(), str(venv)], cwd)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(requirements)
    try:
        # Bytecode now: every app server start would otherwise compile what it imports.
        _uv(
            ["pip", "sync", "--quiet", "--compile-bytecode", "--python", str(python),
             handle.name],
            cwd,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    link_llamaws(venv)
    return python


def link_llamaws(venv: Path) -> None:
    """Make the running llamaws's server packages importable in ``venv``."""
    links = venv / LINK_DIR / "llamaws"
    shutil.rmtree(venv / LINK_DIR, ignore_errors=True)
    links.mkdir(parents=True)
    for name, source in _llamaws_sources().items():
        (links / name).symlink_to(source, target_is_directory=True)
    (_site_packages(venv) / PTH_FILE).write_text(f"{venv / LINK_DIR}\n")


def _llamaws_sources() -> dict[str, Path]:
    sources = {}
    for name in LINKED_PACKAGES:
        spec = importlib.util.find_spec(f"llamaws.{name}")
        assert spec is not None and spec.submodule_search_locations
        sources[name] = Path(next(iter(spec.submodule_search_locations))).resolve()
    return sources


def _state(app_dir: Path) -> dict[str, object]:
    from llamaws.builder.dependencies import fingerprint

    return {
        "fingerprint": fingerprint(app_dir),
        "llamaws": {name: str(path) for name, path in _llamaws_sources().items()},
    }


def _read_state(venv: Path) -> object:
    try:
        return json.loads((venv / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_state(venv: Path, state: dict[str, object]) -> None:
    (venv / STATE_FILE).write_text(json.dumps(state, indent=1))


def _remove_state(venv: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (venv / STATE_FILE).unlink()


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def _base_python() -> str:
    """The interpreter llamaws runs on (outside any venv): the app's gets the same version."""
    return str(Path(sys._base_executable if hasattr(sys, "_base_executable") else sys.executable))


def _same_python(venv: Path) -> bool:
    try:
        config = (venv / "pyvenv.cfg").read_text()
    except OSError:
        return False
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return value.strip().startswith(platform.python_version())
    return False


def _uv(arguments: list[str], cwd: Path) -> None:
    from llamaws.builder.dependencies import is_network_error, uv_binary

    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    command = [uv_binary(), *arguments]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0 and "pip" in arguments and is_network_error(result.stderr):
        # No network: install from uv's cache.
        result = subprocess.run(
            [*command, "--offline"], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LlamawsError(
            f"preparing the app's environment failed: {last.strip()}",
            hint=f"Run `{' '.join(command)}` in {cwd} to see why.",
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One llamaws at a time prepares an app's environment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():  # .llamaws/ is llamaws's: never part of the app's repository
        ignore.write_text("*\n")
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _shown(path: Path, base: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)


def _say(message: str) -> None:
    print(f"llamaws: {message}", file=sys.stderr, flush=True)
