"""UI build: the env contract, the configured package manager and script, the debugger files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.errors import LlamawsError
from llamaws.builder import ui_build
from llamaws.builder.manifest import read_manifest, scan_build
from llamaws.cli.main import app as cli
from llamaws.local.debugger import debugger_routes

from .support import EXAMPLES
from .ui_support import ui_app_copy


def _app_with_ui(root: Path, ui_section: str, scripts: dict[str, str]) -> Path:
    app = root / "hello"
    shutil.copytree(
        EXAMPLES / "hello", app, ignore=shutil.ignore_patterns("workflows.db*", ".llamaws")
    )
    with (app / "pyproject.toml").open("a") as handle:
        handle.write(f"\n[tool.llamadeploy.ui]\n{ui_section}\n")
    (app / "ui").mkdir()
    (app / "ui" / "package.json").write_text(json.dumps({"name": "x", "scripts": scripts}))
    return app


def test_env_contract_and_public_variables(tmp_path: Path) -> None:
    deployment = resolve_deployment(_app_with_ui(tmp_path, 'directory = "ui"', {}))
    env = ui_build.ui_env(
        deployment, {"PUBLIC_API_KEY": "k", "HOME": "/h"}, ui_port=5000, server_port=5001
    )
    assert env["PORT"] == "5000"
    assert env["LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH"] == "/deployments/hello/ui"
    assert env["LLAMA_DEPLOY_DEPLOYMENT_NAME"] == "hello"
    assert env["LLAMA_DEPLOY_DEPLOYMENT_URL_ID"] == "hello"
    assert env["LLAMA_DEPLOY_SERVER_PORT"] == "5001"
    assert env["API_KEY"] == "k" and env["PUBLIC_API_KEY"] == "k" and env["HOME"] == "/h"


def test_pnpm_and_yarn_go_through_corepack_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = {"corepack": "/usr/bin/corepack", "npm": "/usr/bin/npm"}
    monkeypatch.setattr("llamaws.builder.ui_build.shutil.which", found.get)
    assert ui_build.run_script_command("pnpm", "dev") == ["/usr/bin/corepack", "pnpm", "run", "dev"]
    assert ui_build.package_manager_env("yarn")["COREPACK_INTEGRITY_KEYS"] == "0"
    assert ui_build.package_manager_env("npm") == {}
    assert ui_build.install_command("yarn", Path("/nowhere"))[1:] == ["yarn", "install"]
    with pytest.raises(LlamawsError, match="'bun' is not installed"):
        ui_build.run_script_command("bun", "dev")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_build_runs_the_configured_script_with_the_env_into_the_output_dir(
    tmp_path: Path,
) -> None:
    script = (
        'mkdir -p ../out && echo "$LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH $PORT $GREETING" '
        "> ../out/index.html"
    )
    app = _app_with_ui(
        tmp_path,
        'directory = "ui"\nbuild_command = "compile"\nbuild_output_dir = "out"',
        {"compile": script, "build": "exit 1"},
    )
    deployment = resolve_deployment(app)
    output = ui_build.build_ui(
        deployment, {"PUBLIC_GREETING": "hi", "PATH": "/usr/bin:/bin"}, install=False, ui_port=4999
    )
    assert output == app / "out"
    assert (output / "index.html").read_text().strip() == "/deployments/hello/ui 4999 hi"


def test_build_failure_is_one_error(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    deployment = resolve_deployment(_app_with_ui(tmp_path, 'directory = "ui"', {"build": "exit 3"}))
    with pytest.raises(LlamawsError, match=r"building the UI failed \(exit code 3\)"):
        ui_build.build_ui(deployment, {"PATH": "/usr/bin:/bin"}, install=False)


async def test_debugger_redirects_to_its_offline_page() -> None:
    app = Starlette(routes=debugger_routes("/deployments/hello"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        redirect = await client.get("/debugger")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "/debugger/index.html?api=%2Fdeployments%2Fhello"
        page = await client.get(redirect.headers["location"])
        assert page.status_code == 200 and 'src="debugger.js"' in page.text
        assert "http" not in page.text  # nothing from a CDN
        script = await client.get("/debugger/debugger.js")
        assert script.headers["content-type"].startswith("text/javascript")


def test_ui_build_command_builds_the_example_and_writes_its_manifest(tmp_path: Path) -> None:
    app = ui_app_copy(tmp_path)
    result = CliRunner().invoke(cli, ["ui", "build", str(app), "--no-install"])
    assert result.exit_code == 0, result.output
    assert "vite build" in result.stderr  # the build's own output, as it runs
    written = read_manifest(app / ".llamaws" / "build" / "ui-manifest.json")
    assert written == scan_build(app / "ui" / "dist")
    assert set(written.files) >= {"index.html", "robots.txt"}
    page = (app / "ui" / "dist" / "index.html").read_text()
    assert "/deployments/ui-app/ui/assets/" in page  # built for its base path
    assert result.stdout.startswith(f"Built {app / 'ui' / 'dist'}: {len(written.files)} files")


def test_ui_build_command_failure_shows_the_output_and_how_to_reproduce(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    script = "echo compiling; echo 'src/x.ts: broken' >&2; exit 3"
    app = _app_with_ui(tmp_path, 'directory = "ui"', {"build": script})
    result = CliRunner().invoke(cli, ["ui", "build", str(app), "--no-install"])
    assert result.exit_code == 1
    assert "src/x.ts: broken" in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: building the UI failed (exit code 3): ")
    assert (
        f"To see why: cd {app / 'ui'} && LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH=/deployments/hello/ui "
        "LLAMA_DEPLOY_DEPLOYMENT_NAME=hello " in error
    )
    assert error.endswith("run build")
    assert not (app / ".llamaws").exists()
