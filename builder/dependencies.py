"""An app's dependency set: one resolution for the local environment and the Lambda bundle.

Public API (stable; the Lambda bundle and the per-app environments build on it)::

    from llamaws.builder.dependencies import Target, resolve

    resolution = resolve(app_dir)                                   # this machine, "local"
    bundle = resolve(app_dir, Target("3.12", "aarch64-manylinux2014"), profile="lambda")
    bundle.requirements      # ["boto3==1.44.8", "llama-index-workflows==2.26.1", ...]
    bundle.text()            # the same as a requirements.txt

- :class:`Target` ``(python_version, platform)``: ``platform`` is a ``uv
  --python-platform`` name (``"x86_64-manylinux2014"``, ``"aarch64-manylinux2014"``);
  ``None`` means this machine. ``Target.here()`` is the running interpreter.
- :func:`resolve` ``(app_dir, target=None, *, profile="local") -> Resolution``:
  ``Resolution.requirements`` is a sorted list of ``name==version`` lines for every
  package to install (transitive, no markers: they are evaluated for the target).
- Profiles: ``"lambda"`` = the app's dependencies + what ``llamaws.adapter`` needs at run
  time (:data:`PROFILE_ROOTS`); ``"local"`` = that + what the local app server needs
  (uvicorn, the UI proxy's httpx and websockets, awslambdaric for ``serve --lambda``).
  No CDK, typer, jinja2, watchfiles or dev tools in either. A package in both sets gets
  the same version in both: the lambda set is resolved within the local one.
- :func:`fingerprint` hashes every input of a resolution without resolving: an
  environment built from an equal fingerprint is up to date.
- :class:`DependencyConflict` (a :class:`~llamaws.adapter.errors.LlamawsError`): the
  app requires something llamaws's pins exclude; its one line names both requirements.

Inputs: the app's ``[project].dependencies`` (requirements); llamaws's direct runtime
dependencies (:data:`PROFILE_ROOTS`) at llamaws's locked versions (required exactly: the
combination llamaws is tested with); the rest of llamaws's lock (their dependencies,
e.g. ``click``) and the app's ``uv.lock`` when present (exported with ``uv export``) as
preferences: ``uv pip compile`` keeps those versions unless the app's requirements
exclude them (an app that needs ``click<8.3`` gets it; one that needs ``pydantic<2``
conflicts). llamaws's pins ship as package data
(``builder/pins/<profile>.txt``), generated from llamaws's ``uv.lock`` by
``python -m llamaws.builder.dependencies`` (a test keeps them in sync with the lock).
Resolution runs ``uv pip compile --python-version V [--python-platform P]``, with the
``uv`` binary of the ``uv`` package; without network it retries offline from uv's cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform as platform_module
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from llamaws.adapter.errors import ConfigError, LlamawsError

__all__ = [
    "PROFILE_ROOTS",
    "DependencyConflict",
    "Profile",
    "Resolution",
    "ResolutionError",
    "Target",
    "app_requirements",
    "fingerprint",
    "is_network_error",
    "llamaws_pins",
    "pins_from_lock",
    "resolve",
    "runtime_requirements",
    "uv_binary",
]

Profile = Literal["lambda", "local"]
PROFILES: tuple[Profile, ...] = ("lambda", "local")

_LAMBDA_ROOTS = (
    # What llamaws.adapter imports at run time (a test imports every adapter module in
    # an environment holding only this set).
    "llama-index-workflows[server]",
    "llama-agents-server",
    "starlette",
    "mangum",
    "boto3",
    "dynamodb-json",
    "httpx",
    "pydantic",
    "pyyaml",
    "python-dotenv",
)
PROFILE_ROOTS: Mapping[Profile, tuple[str, ...]] = {
    "lambda": _LAMBDA_ROOTS,
    # + the local app server: uvicorn, the UI proxy (websockets), the runtime loop of
    # `serve --lambda` containers (awslambdaric).
    "local": (*_LAMBDA_ROOTS, "uvicorn", "websockets", "awslambdaric"),
}
"""llamaws's direct dependencies each profile needs (each is in llamaws's own
``[project].dependencies``; their versions and those of their dependencies come from
llamaws's lock)."""

PINS_DIR = Path(__file__).parent / "pins"
_GENERATED = "# Generated from llamaws's uv.lock by `python -m llamaws.builder.dependencies`."


class ResolutionError(LlamawsError):
    """The app's dependencies could not be resolved (``uv pip compile`` failed)."""


class DependencyConflict(ResolutionError):
    """The app requires a version of a package that llamaws's pins exclude."""

    status_code = 400


@dataclass(frozen=True)
class Target:
    """Where the resolved set will be installed: a Python version and a platform."""

    python_version: str
    """``"3.12"`` or ``"3.12.7"``."""
    platform: str | None = None
    """A ``uv --python-platform`` name (``"aarch64-manylinux2014"``); None: this machine."""

    @classmethod
    def here(cls) -> Target:
        """The running interpreter on this machine."""
        return cls(platform_module.python_version(), None)

    def marker_environment(self) -> dict[str, str]:
        """The PEP 508 marker values of this target (for checks before resolving)."""
        env: dict[str, str] = dict(_default_marker_environment())
        version = Version(self.python_version)
        env["python_version"] = f"{version.major}.{version.minor}"
        env["python_full_version"] = (
            self.python_version if len(version.release) >= 3 else f"{self.python_version}.0"
        )
        if self.platform is not None:
            machine = self.platform.split("-", 1)[0]
            linux = "linux" in self.platform or "manylinux" in self.platform
            env.update(
                {
                    "platform_machine": machine,
                    "sys_platform": "linux" if linux else env["sys_platform"],
                    "platform_system": "Linux" if linux else env["platform_system"],
                    "os_name": "posix" if linux else env["os_name"],
                }
            )
        return env


@dataclass(frozen=True)
class Resolution:
    """A resolved dependency set for one app, target and profile."""

    requirements: list[str]
    """Sorted ``name==version`` lines, every package to install."""
    target: Target
    profile: Profile
    notes: list[str] = field(default_factory=list)
    """Things worth saying (e.g. the app's uv.lock could not be read)."""

    def text(self) -> str:
        """The set as a requirements.txt."""
        return "".join(f"{line}\n" for line in self.requirements)

    def pins(self) -> dict[str, str]:
        """Canonical package name → version."""
        pins: dict[str, str] = {}
        for line in self.requirements:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
        return pins


# -- inputs -------------------------------------------------------------------


def app_requirements(app_dir: Path) -> list[Requirement]:
    """The app's ``[project].dependencies`` (none without a ``pyproject.toml``)."""
    project = _app_project(app_dir)
    specs = project.get("dependencies", [])
    pyproject = app_dir / "pyproject.toml"
    if not isinstance(specs, list):
        raise ConfigError(f"{pyproject}: field 'project.dependencies' must be a list")
    requirements = []
    for spec in specs:
        try:
            requirements.append(Requirement(str(spec)))
        except InvalidRequirement as exc:
            raise ConfigError(f"{pyproject}: field 'project.dependencies': {exc}") from exc
    return requirements


def llamaws_pins(profile: Profile) -> list[str]:
    """llamaws's runtime pins for ``profile``: ``name==version[ ; marker]`` lines."""
    return [
        line
        for line in _pins_text(profile).splitlines()
        if line.strip() and not line.startswith("#")
    ]


def runtime_requirements(profile: Profile, target: Target | None = None) -> list[str]:
    """The profile's roots at llamaws's pinned versions (``name[extras]==version``)."""
    pins = _pin_versions(profile, target)
    lines = []
    for root in PROFILE_ROOTS[profile]:
        requirement = Requirement(root)
        lines.append(f"{root}=={pins[canonicalize_name(requirement.name)]}")
    return lines


def fingerprint(app_dir: Path, target: Target | None = None, *, profile: Profile = "local") -> str:
    """A hash of every input of :func:`resolve` (no resolution, no network)."""
    target = target or Target.here()
    digest = hashlib.sha256()
    parts: list[bytes] = [
        json.dumps([target.python_version, target.platform, profile]).encode(),
        _pins_text(profile).encode(),
        json.dumps([str(r) for r in app_requirements(app_dir)]).encode(),
    ]
    lock = app_dir / "uv.lock"
    parts.append(lock.read_bytes() if lock.is_file() else b"-")
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


# -- resolution ---------------------------------------------------------------


def resolve(
    app_dir: Path, target: Target | None = None, *, profile: Profile = "local"
) -> Resolution:
    """Resolve the app's dependencies with llamaws's runtime for ``target``.

    llamaws's direct runtime dependencies (:data:`PROFILE_ROOTS`) are held at llamaws's
    pinned versions; the rest of llamaws's lock and the app's ``uv.lock`` are
    preferences (kept unless the app's requirements exclude them). The ``"lambda"`` set
    is resolved within the ``"local"`` one, so a package in both has one version.

    Raises :class:`DependencyConflict` when an app requirement excludes one of llamaws's
    pinned dependencies, :class:`ResolutionError` when uv finds no solution otherwise.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    target = target or Target.here()
    app_dir = app_dir.resolve()
    requirements = [str(r) for r in app_requirements(app_dir)]
    _check_direct_conflicts(requirements, target, app_dir / "pyproject.toml")
    notes: list[str] = []
    preferences = _preferences(app_dir, notes)
    local = _compile(
        app_dir, target, [*requirements, *runtime_requirements("local", target)], [], preferences
    )
    if profile == "lambda":
        # Within the local set: the bundle gets the local environment's versions.
        lines = _compile(
            app_dir, target, [*requirements, *runtime_requirements("lambda", target)], local, []
        )
    else:
        lines = local
    return Resolution(sorted(lines, key=_sort_key), target, profile, notes)


def _compile(
    app_dir: Path,
    target: Target,
    requirements: Sequence[str],
    constraints: Sequence[str],
    preferences: Sequence[str],
) -> list[str]:
    """``uv pip compile``: every package to install, ``name==version`` lines."""
    with tempfile.TemporaryDirectory(prefix="llamaws-resolve-") as tmp:
        work = Path(tmp)
        (work / "requirements.in").write_text("".join(f"{line}\n" for line in requirements))
        output = work / "requirements.txt"
        # uv keeps the versions of an existing output file where it can (preferences).
        output.write_text("".join(f"{line}\n" for line in preferences))
        command = [
            uv_binary(), "pip", "compile", str(work / "requirements.in"),
            "--output-file", str(output),
            # This interpreter, so uv does not search for one of the target's version
            # (seconds with pyenv shims); --python-version sets the resolution's.
            "--python", sys.executable,
            "--python-version", target.python_version,
            "--no-header", "--no-annotate", "--quiet", "--color", "never",
        ]  # fmt: skip
        if constraints:
            (work / "constraints.txt").write_text("".join(f"{line}\n" for line in constraints))
            command += ["--constraint", str(work / "constraints.txt")]
        if target.platform is not None:
            command += ["--python-platform", target.platform]
        result = _run_uv(command, cwd=app_dir)
        if result.returncode != 0:
            raise _resolution_error(result.stderr, app_dir)
        return [
            line.strip()
            for line in output.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]


def _preferences(app_dir: Path, notes: list[str]) -> list[str]:
    """llamaws's locked versions, overridden by the app's ``uv.lock`` for its packages."""
    preferred: dict[str, list[str]] = {}
    for line in llamaws_pins("local"):
        preferred.setdefault(canonicalize_name(Requirement(line).name), []).append(line)
    app_locked: dict[str, list[str]] = {}
    for line in _locked_by_app(app_dir, notes):
        with contextlib.suppress(InvalidRequirement):
            app_locked.setdefault(canonicalize_name(Requirement(line).name), []).append(line)
    preferred.update(app_locked)
    return [line for name in sorted(preferred) for line in preferred[name]]


def uv_binary() -> str:
    """The ``uv`` executable of the ``uv`` package (a runtime dependency of llamaws)."""
    from uv import find_uv_bin

    return find_uv_bin()


def _run_uv(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0 and "--offline" not in command and is_network_error(result.stderr):
        # No network: resolve from uv's cache.
        result = subprocess.run(
            [*command, "--offline"], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    return result


def is_network_error(stderr: str) -> bool:
    """Whether uv failed for want of the network (then its cache may do)."""
    markers = ("error sending request", "dns error", "Failed to fetch", "Could not connect")
    return any(marker in stderr for marker in markers)


def _check_direct_conflicts(requirements: Sequence[str], target: Target, source: Path) -> None:
    environment = target.marker_environment()
    pins = _root_versions(target)
    for spec in requirements:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier:
            continue
        if not requirement.specifier.contains(pinned, prereleases=True):
            raise DependencyConflict(
                f"the app requires {requirement} ({source.name}) but llamaws needs "
                f"{requirement.name}=={pinned}",
                hint=f"Allow {requirement.name} {pinned} in the app's dependencies, or use a "
                "llamaws release built on the version the app needs.",
            )


def _resolution_error(stderr: str, app_dir: Path) -> ResolutionError:
    explanation = _uv_explanation(stderr)
    for name, version in _root_versions(Target.here()).items():
        # uv says "you require" for llamaws's constraints too: say whose they are.
        explanation = re.sub(
            rf"\byou require {re.escape(name)}=={re.escape(version)}\b",
            f"llamaws requires {name}=={version}",
            explanation,
        )
    if "Because" in explanation or "unsatisfiable" in explanation:
        return DependencyConflict(
            f"the app's dependencies conflict with llamaws's: {explanation}",
            hint=f"Change the app's [project].dependencies in {app_dir / 'pyproject.toml'}.",
        )
    return ResolutionError(
        f"resolving the app's dependencies failed: {explanation}",
        hint="Check the app's [project].dependencies and the network (or uv's cache).",
    )


def _uv_explanation(stderr: str) -> str:
    """uv's error as one line: the 'Because ...' derivation when there is one."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    cleaned = [
        re.sub(r"^(?:[\u00d7\u2570\u2500\u25b6\u2502\s]+|cause:\s*|error:\s*)+", "", line)
        for line in lines
    ]
    start = next((i for i, line in enumerate(cleaned) if "Because" in line), None)
    if start is not None:
        text = " ".join(line for line in cleaned[start:] if not line.startswith("hint:"))
    else:
        text = " ".join(cleaned[-2:]) if cleaned else "(uv printed nothing)"
    return re.sub(r"\s+", " ", text).strip()


def _locked_by_app(app_dir: Path, notes: list[str]) -> list[str]:
    """The app's uv.lock as pinned lines (``name==version[ ; marker]``)."""
    if not (app_dir / "uv.lock").is_file():
        return []
    result = _run_uv(
        [
            uv_binary(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--no-emit-project",
            "--no-header",
            "--no-annotate",
            "--quiet",
        ],
        cwd=app_dir,
    )
    if result.returncode != 0:
        notes.append(f"the app's uv.lock was not used: {_uv_explanation(result.stderr)}")
        return []
    return [
        line.strip()
        for line in result.stdout.splitlines()
        if line.strip() and not line.lstrip().startswith(("-e", "#", "-"))
    ]


def _sort_key(line: str) -> str:
    return canonicalize_name(line.partition("==")[0])


def _app_project(app_dir: Path) -> dict[str, Any]:
    pyproject = app_dir / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        with pyproject.open("rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from exc
    return project if isinstance(project, dict) else {}


@cache
def _pins_text(profile: Profile) -> str:
    path = PINS_DIR / f"{profile}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LlamawsError(
            f"llamaws's runtime pins are missing ({path})",
            hint="Reinstall llamaws (or, in a checkout, run "
            "`python -m llamaws.builder.dependencies`).",
        ) from exc


def _pin_versions(profile: Profile, target: Target | None = None) -> dict[str, str]:
    """Canonical name → pinned version (for ``target``'s Python when locked per version)."""
    environment = (target or Target.here()).marker_environment()
    pins: dict[str, str] = {}
    for line in llamaws_pins(profile):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def _root_versions(target: Target) -> dict[str, str]:
    """llamaws's direct runtime dependencies (every profile's roots) → pinned version."""
    pins = _pin_versions("local", target)
    return {
        name: pins[name]
        for name in (canonicalize_name(Requirement(r).name) for r in PROFILE_ROOTS["local"])
    }


def _default_marker_environment() -> dict[str, str]:
    from packaging.markers import default_environment

    return {key: str(value) for key, value in default_environment().items()}


# -- llamaws's pins from its lock ---------------------------------------------


def pins_from_lock(lock_path: Path, profile: Profile) -> str:
    """The pins file of ``profile``: the closure of its roots in llamaws's ``uv.lock``.

    Each package reached from the roots (following extras) at its locked version; a
    package locked at several versions (per Python version) gets one line per version
    with the marker of the dependency edge that selects it.
    """
    with lock_path.open("rb") as handle:
        lock = tomllib.load(handle)
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(canonicalize_name(package["name"]), []).append(package)
    (llamaws,) = packages["llamaws"]
    direct = {canonicalize_name(dep["name"]): dep for dep in llamaws.get("dependencies", [])}
    found: dict[tuple[str, str], set[str]] = {}
    visited: set[tuple[str, str, str, str]] = set()

    def visit(edge: Mapping[str, Any], extras: Iterable[str]) -> None:
        name = canonicalize_name(edge["name"])
        candidates = packages[name]
        if "version" in edge:
            candidates = [p for p in candidates if p["version"] == edge["version"]]
        (package,) = candidates
        marker = str(edge.get("marker", "")) if len(packages[name]) > 1 else ""
        found.setdefault((name, package["version"]), set()).add(marker)
        for extra in ("", *extras):
            state = (name, package["version"], marker, extra)
            if state in visited:
                continue
            visited.add(state)
            edges = (
                package.get("optional-dependencies", {}).get(extra, [])
                if extra
                else package.get("dependencies", [])
            )
            for dependency in edges:
                visit(dependency, dependency.get("extra", []))

    for root in PROFILE_ROOTS[profile]:
        requirement = Requirement(root)
        root_name = canonicalize_name(requirement.name)
        if root_name not in direct:
            raise LlamawsError(f"{root} is not one of llamaws's direct dependencies")
        visit(direct[root_name], requirement.extras)

    lines = []
    for (name, version), markers in sorted(found.items()):
        marker = "" if "" in markers else " or ".join(f"({m})" for m in sorted(markers))
        lines.append(f"{name}=={version}" + (f" ; {Marker(marker)}" if marker else ""))
    roots = ", ".join(PROFILE_ROOTS[profile])
    return f"{_GENERATED}\n# profile {profile!r}: {roots}\n" + "".join(
        f"{line}\n" for line in lines
    )


def write_pins(lock_path: Path, directory: Path = PINS_DIR) -> list[Path]:
    """Regenerate ``pins/<profile>.txt`` from ``lock_path``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for profile in PROFILES:
        path = directory / f"{profile}.txt"
        path.write_text(pins_from_lock(lock_path, profile), encoding="utf-8")
        written.append(path)
    _pins_text.cache_clear()
    return written


def _main(argv: Sequence[str]) -> int:
    lock = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "uv.lock"
    for path in write_pins(lock):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
