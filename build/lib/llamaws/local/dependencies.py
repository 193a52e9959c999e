"""Get an app's own Python dependencies into the emulator's environment.

``llamactl`` syncs a venv per app with uv and injects its server there. llamaws
runs the app in its own environment instead (one process, fast start): the app's
``[project].dependencies`` that are not installed are installed into it with
``uv pip install`` (``pip`` when uv is absent). ``--no-install`` skips this; a
missing module then fails the start with one line naming it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from llamaws.adapter.errors import ConfigError, LlamawsError

__all__ = ["install_missing", "missing_requirements"]


def missing_requirements(app_dir: Path) -> list[str]:
    """The app's declared dependencies that this environment does not satisfy."""
    pyproject = app_dir / "pyproject.toml"
    if not pyproject.is_file():
        return []
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle).get("project", {})
    missing: list[str] = []
    for spec in project.get("dependencies", []):
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise ConfigError(f"{pyproject}: field 'project.dependencies': {exc}") from exc
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(spec)
            continue
        if requirement.specifier and not requirement.specifier.contains(
            installed, prereleases=True
        ):
            missing.append(spec)
    return missing


def install_missing(app_dir: Path) -> list[str]:
    """Install what :func:`missing_requirements` lists; returns what was installed."""
    missing = missing_requirements(app_dir)
    if not missing:
        return []
    uv = shutil.which("uv")
    command = (
        [uv, "pip", "install", "--python", sys.executable, *missing]
        if uv
        else [sys.executable, "-m", "pip", "install", *missing]
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LlamawsError(
            f"installing the app's dependencies failed: {last}",
            hint=f"Run `{' '.join(command)}` to see why, or pass --no-install.",
        )
    return missing
