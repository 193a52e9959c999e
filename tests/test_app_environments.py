"""Each app in its own environment, run from its own folder.

Apps are written to temp dirs; ``llamaws serve`` runs for real (``--install`` creates the
app's environment with uv from the package index or uv's cache). Every emulator starts
from the repo root, another folder than the app's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from llamaws.builder.dependencies import Target, resolve, uv_binary
from llamaws.local.environments import environment_dir, sync_environment

from .support import Emulator, wait_until

pytestmark = pytest.mark.slow

PROBE = """
import importlib.metadata, os, sys
from pathlib import Path

from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class Probe(Workflow):
    @step
    async def probe(self, ev: StartEvent) -> StopEvent:
        try:
            tomli_w = importlib.metadata.version("tomli-w")
        except importlib.metadata.PackageNotFoundError:
            tomli_w = None
        return StopEvent(result={
            "tomli_w": tomli_w,
            "prefix": sys.prefix,
            "cwd": os.getcwd(),
            "data": Path("data/greeting.txt").read_text().strip(),
        })


probe = Probe(timeout=None)
"""


def make_app(root: Path, name: str, dependencies: list[str], extra: str = "") -> Path:
    """An app whose ``probe`` workflow reports its tomli-w, interpreter and folder."""
    app = root / name
    (app / "src" / "probe_app").mkdir(parents=True)
    (app / "src" / "probe_app" / "__init__.py").write_text("")
    (app / "src" / "probe_app" / "workflows.py").write_text(PROBE)
    (app / "data").mkdir()
    (app / "data" / "greeting.txt").write_text(f"hello from {name}\n")
    listed = ", ".join(json.dumps(spec) for spec in dependencies)
    (app / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = [{listed}]

            [tool.llamadeploy]
            name = "{name}"

            [tool.llamadeploy.workflows]
            probe = "probe_app.workflows:probe"
            """
        )
        + extra
    )
    return app


def probe(emulator: Emulator, name: str, timeout: float = 30) -> dict[str, Any]:
    response = httpx.post(
        f"{emulator.url}/deployments/{name}/workflows/probe/run", json={}, timeout=timeout
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]["value"]["result"]
    return result


def llamaws_environment() -> str:
    """The packages (and versions) of llamaws's own environment."""
    return subprocess.run(
        [uv_binary(), "pip", "freeze", "--python", sys.executable],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def installed(python: Path) -> dict[str, str]:
    frozen = subprocess.run(
        [uv_binary(), "pip", "freeze", "--python", str(python)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("==", 1) for line in frozen.splitlines() if "==" in line)


def test_two_apps_pinning_different_versions_each_get_their_own(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    before = llamaws_environment()
    old = make_app(tmp_path, "old-tomli", ["tomli-w==1.0.0"])
    new = make_app(tmp_path, "new-tomli", ["tomli-w==1.2.0"])

    first = emulator_factory(old, "--install", "--no-reload")
    seen_old = probe(first, "old-tomli")
    first.stop()
    second = emulator_factory(new, "--install", "--no-reload")
    seen_new = probe(second, "new-tomli")

    assert seen_old["tomli_w"] == "1.0.0" and seen_new["tomli_w"] == "1.2.0"
    assert Path(seen_old["prefix"]) == environment_dir(old)
    assert Path(seen_new["prefix"]) == environment_dir(new)
    assert llamaws_environment() == before
    assert "preparing the app's environment" in first.logs()

    # A second start reuses the environment as it is.
    again = emulator_factory(old, "--install", "--no-reload")
    assert probe(again, "old-tomli")["tomli_w"] == "1.0.0"
    assert "preparing the app's environment" not in again.logs()


def test_bundle_set_is_the_local_environment_set_without_the_local_server(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = make_app(tmp_path, "bundled", ["tomli-w==1.0.0"])
    emulator = emulator_factory(app, "--install", "--no-reload")
    local = installed(Path(probe(emulator, "bundled")["prefix"]) / "bin" / "python")
    bundle = resolve(app, Target.here(), profile="lambda").pins()
    assert {name: local[name] for name in bundle} == bundle
    assert set(local) - set(bundle) <= {"awslambdaric", "snapshot-restore-py", "websockets"}


def test_lambda_set_imports_every_adapter_module(tmp_path: Path) -> None:
    app = make_app(tmp_path, "lambda-only", [])
    python = sync_environment(
        tmp_path / "venv", resolve(app, profile="lambda").text(), cwd=tmp_path
    )
    script = (
        "import importlib, pkgutil, llamaws.adapter as a\n"
        "names = [m.name for m in pkgutil.walk_packages(a.__path__, 'llamaws.adapter.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10


@pytest.mark.parametrize("mode", ["--no-reload", "--reload", "--preview", "--lambda"])
def test_app_server_runs_in_the_app_folder(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], mode: str
) -> None:
    extra = ""
    if mode == "--preview":
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed")
        extra = '\n[tool.llamadeploy.ui]\ndirectory = "ui"\n'
    app = make_app(tmp_path, "folder", [], extra)
    if mode == "--preview":
        build = (
            "node -e \"require('fs').mkdirSync('dist',{recursive:true});"
            "require('fs').writeFileSync('dist/index.html','<h1>built</h1>')\""
        )
        (app / "ui").mkdir()
        (app / "ui" / "package.json").write_text(
            json.dumps({"name": "ui", "private": True, "scripts": {"build": build}})
        )
    args = [mode] + (["--lambda-containers", "1"] if mode == "--lambda" else [])
    emulator = emulator_factory(app, *args, wait=False, LLAMAWS_AUTH="none")

    def answered() -> dict[str, Any] | None:
        try:
            return probe(emulator, "folder")
        except (httpx.HTTPError, AssertionError):
            return None

    seen = wait_until(answered, timeout=90, interval=0.2, what=f"the app ({mode}) to answer")
    assert seen["data"] == "hello from folder"
    assert Path(seen["cwd"]) == app


def test_editing_dependencies_while_serving_updates_the_environment(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = make_app(tmp_path, "moving", ["tomli-w==1.0.0"])
    emulator = emulator_factory(app, "--install", "--reload")
    assert probe(emulator, "moving")["tomli_w"] == "1.0.0"
    config = app / "pyproject.toml"
    config.write_text(config.read_text().replace("tomli-w==1.0.0", "tomli-w==1.2.0"))

    def moved() -> bool:
        try:
            return bool(probe(emulator, "moving", timeout=10)["tomli_w"] == "1.2.0")
        except (httpx.HTTPError, AssertionError):
            return False

    wait_until(moved, timeout=90, interval=0.2, what="the environment to follow pyproject.toml")
    assert emulator.logs().count("preparing the app's environment") == 2


def test_environment_is_prepared_offline_from_uv_cache(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    # tomli-w 1.0.0 is in uv's cache (the tests above use it); no index is reachable.
    app = make_app(tmp_path, "offline", ["tomli-w==1.0.0"])
    unreachable = "http://127.0.0.1:9"
    emulator = emulator_factory(
        app, "--install", "--no-reload", HTTPS_PROXY=unreachable, HTTP_PROXY=unreachable,
        https_proxy=unreachable, http_proxy=unreachable, NO_PROXY="127.0.0.1,localhost",
    )  # fmt: skip
    assert probe(emulator, "offline")["tomli_w"] == "1.0.0"


def test_no_install_uses_the_environment_as_it_is(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = make_app(tmp_path, "as-is", ["tomli-w==1.0.0"])
    emulator_factory(app, "--install", "--no-reload").stop()
    config = app / "pyproject.toml"
    config.write_text(config.read_text().replace("tomli-w==1.0.0", "tomli-w==1.2.0"))
    emulator = emulator_factory(app, "--no-reload")  # the Emulator passes --no-install
    seen = probe(emulator, "as-is")
    assert seen["tomli_w"] == "1.0.0" and Path(seen["prefix"]) == environment_dir(app)
    assert "preparing the app's environment" not in emulator.logs()
