"""The app's dependency resolution (``llamaws.builder.dependencies``).

Resolutions run the real ``uv pip compile`` (package index, else uv's cache); apps are
small ``pyproject.toml`` files in temp dirs.
"""

from __future__ import annotations

import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from llamaws.builder import dependencies
from llamaws.builder.dependencies import (
    PROFILE_ROOTS,
    DependencyConflict,
    Target,
    fingerprint,
    pins_from_lock,
    resolve,
)

from .support import ROOT

BUNDLE = Target("3.12", "aarch64-manylinux2014")
# Tools of the CLI, the infrastructure and development: never in an app's set.
NOT_RUNTIME = {"typer", "jinja2", "watchfiles", "aws-cdk-lib", "constructs", "pytest", "mypy",
               "ruff", "moto", "uv", "rich", "llama-agents-core"}  # fmt: skip


def make_app(root: Path, dependencies: list[str], extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{spec}"' for spec in dependencies)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "app"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = [{listed}]
            {extra}
            [tool.llamadeploy.workflows]
            echo = "app:echo"
            """
        )
    )
    return root


def test_shipped_pins_match_llamaws_lock() -> None:
    for profile in ("lambda", "local"):
        shipped = (dependencies.PINS_DIR / f"{profile}.txt").read_text()
        assert shipped == pins_from_lock(ROOT / "uv.lock", profile), (
            f"builder/pins/{profile}.txt is stale: "
            "run `uv run python -m llamaws.builder.dependencies`"
        )


def test_profile_roots_are_llamaws_own_dependencies_at_its_specifiers() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        declared = {
            canonicalize_name(Requirement(spec).name): Requirement(spec)
            for spec in tomllib.load(handle)["project"]["dependencies"]
        }
    for root in PROFILE_ROOTS["local"]:
        requirement = Requirement(root)
        assert canonicalize_name(requirement.name) in declared, root
        assert requirement.extras <= declared[canonicalize_name(requirement.name)].extras, root


def test_lambda_and_local_sets_pin_shared_packages_identically(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", ["tomli-w>=1.0", "llama-index-workflows>=2.20,<3"])
    lambda_set = resolve(app, BUNDLE, profile="lambda").pins()
    local_set = resolve(app, BUNDLE, profile="local").pins()
    assert set(lambda_set) <= set(local_set)
    assert {name: local_set[name] for name in lambda_set} == lambda_set
    assert set(local_set) - set(lambda_set) <= {"awslambdaric", "snapshot-restore-py", "websockets"}
    assert "tomli-w" in lambda_set
    assert not NOT_RUNTIME & set(local_set)


def test_app_without_dependencies_gets_exactly_llamaws_locked_versions(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", [])
    assert resolve(app, profile="local").pins() == locked_versions("local")


def test_app_may_move_a_package_llamaws_only_uses_indirectly(tmp_path: Path) -> None:
    # extract-basic pins click<8.3 (uvicorn's dependency, locked at 8.5.1 by llamaws).
    app = make_app(tmp_path / "app", ["click>=8.2.1,<8.3.0"])
    pins = resolve(app, profile="local").pins()
    assert pins["click"].startswith("8.2.")
    locked = locked_versions("local")
    for root in PROFILE_ROOTS["local"]:
        name = canonicalize_name(Requirement(root).name)
        assert pins[name] == locked[name], root


def test_direct_conflict_names_both_requirements_in_one_line(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", ["pydantic<2"])
    pinned = locked_versions("local")["pydantic"]
    with pytest.raises(DependencyConflict) as caught:
        resolve(app)
    message = str(caught.value)
    assert "\n" not in message
    assert "pydantic<2" in message and f"pydantic=={pinned}" in message


def test_transitive_conflict_is_one_line_from_uv(tmp_path: Path) -> None:
    # fastapi 0.99 needs pydantic<2 and an old starlette: llamaws's pins exclude both,
    # but only through fastapi's own requirements.
    app = make_app(tmp_path / "app", ["fastapi==0.99.1"])
    with pytest.raises(DependencyConflict) as caught:
        resolve(app)
    message = str(caught.value)
    assert "\n" not in message
    assert "fastapi==0.99.1" in message and "llamaws requires" in message
    assert "starlette" in message or "pydantic" in message


def test_marker_of_an_app_requirement_follows_the_target(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", ["tomli-w ; python_version < '3.12'"])
    assert "tomli-w" in resolve(app, Target("3.11"), profile="lambda").pins()
    assert "tomli-w" not in resolve(app, Target("3.12"), profile="lambda").pins()


def test_app_lock_versions_are_kept(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", ["tomli-w==1.0.0"])
    subprocess.run([dependencies.uv_binary(), "lock", "--quiet"], cwd=app, check=True)
    make_app(app, ["tomli-w"])  # the lock still says 1.0.0; the newest is later
    assert resolve(app, profile="lambda").pins()["tomli-w"] == "1.0.0"


def test_fingerprint_follows_dependencies_and_lock_only(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", ["tomli-w"])
    first = fingerprint(app)
    (app / "workflows.py").write_text("x = 1\n")
    assert fingerprint(app) == first
    assert fingerprint(app, profile="lambda") != first
    assert fingerprint(app, Target("3.12", "aarch64-manylinux2014")) != first
    (app / "uv.lock").write_text("version = 1\n")
    locked = fingerprint(app)
    assert locked != first
    make_app(app, ["tomli-w==1.0.0"])
    assert fingerprint(app) != locked


def locked_versions(profile: dependencies.Profile) -> dict[str, str]:
    """llamaws's pins of ``profile`` for the running Python."""
    versions: dict[str, str] = {}
    for line in dependencies.llamaws_pins(profile):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            versions[canonicalize_name(requirement.name)] = str(requirement.specifier)[2:]
    return versions
