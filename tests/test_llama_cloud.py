"""``llama_cloud = true``: the key, base URL and project reach the app and its UI like
``llamactl`` 0.10.4 passes them (the names are compared with llamactl itself in
test_config.py); a missing key is a warning; a UI built for publishing never holds it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from llamaws.adapter.config import (
    LLAMA_CLOUD_DEFAULT_BASE_URL,
    DeploymentConfig,
    llama_cloud_environment,
    resolve_deployment,
)
from llamaws.adapter.errors import LlamawsError
from llamaws.builder import ui_build
from llamaws.local.ui_dev import port_is_listening

from .support import Emulator, free_port, wait_until
from .test_ui_proxy import FAKE_DEV, make_ui_app

ENV_PROBE = """
import os
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class EnvProbe(Workflow):
    @step
    async def probe(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result={k: v for k, v in os.environ.items() if "LLAMA" in k})


env_probe = EnvProbe(timeout=None)
"""
NAMES = ("LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL")


def cloud_app(root: Path, env_file: str) -> Path:
    """examples/hello with ``llama_cloud = true``, an env file, an env probe and a fake UI."""
    app = make_ui_app(root, FAKE_DEV)
    config = app / "pyproject.toml"
    config.write_text(
        config.read_text()
        .replace(
            '[tool.llamadeploy]\nname = "hello"\n',
            '[tool.llamadeploy]\nname = "hello"\nllama_cloud = true\nenv_files = [".env"]\n',
        )
        .replace(
            "[tool.llamadeploy.workflows]\n",
            '[tool.llamadeploy.workflows]\nenv = "hello.env_probe:env_probe"\n',
        )
    )
    (app / "src" / "hello" / "env_probe.py").write_text(ENV_PROBE)
    (app / ".env").write_text(env_file)
    return app


def test_llama_cloud_settings_reach_the_app_and_the_ui_dev_server(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = cloud_app(tmp_path, "LLAMA_CLOUD_API_KEY=llx-test\nLLAMA_DEPLOY_PROJECT_ID=p-1\n")
    ui_port = free_port()
    emulator = emulator_factory(app, "--ui-port", str(ui_port))
    wait_until(lambda: port_is_listening(ui_port), what="the fake dev server")

    seen_by_app = httpx.post(f"{emulator.url}/deployments/hello/workflows/env/run", json={})
    app_env = seen_by_app.json()["result"]["value"]["result"]
    ui_env = httpx.get(f"{emulator.url}/deployments/hello/ui/env").json()
    for env in (app_env, ui_env):
        for prefix in ("", "PUBLIC_", "VITE_", "NEXT_PUBLIC_"):
            assert env[f"{prefix}LLAMA_CLOUD_API_KEY"] == "llx-test"
            assert env[f"{prefix}LLAMA_CLOUD_BASE_URL"] == LLAMA_CLOUD_DEFAULT_BASE_URL
        assert env["LLAMA_AGENTS_PROJECT_ID"] == env["LLAMA_DEPLOY_PROJECT_ID"] == "p-1"
    assert "LLAMA_CLOUD_API_KEY is not set" not in emulator.logs()


def test_llama_cloud_without_a_key_warns_and_serves(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = cloud_app(tmp_path, "")
    emulator = emulator_factory(app, "--ui-port", str(free_port()), LLAMA_CLOUD_API_KEY="")
    assert (
        "llamaws: warning: llama_cloud = true but LLAMA_CLOUD_API_KEY is not set "
        "(environment or env files): the app may not work. Set it, e.g. in .env."
    ) in emulator.logs().splitlines()
    assert httpx.get(f"{emulator.url}/deployments/hello/workflows").status_code == 200


def test_no_llama_cloud_settings_without_llama_cloud() -> None:
    environ = {"LLAMA_CLOUD_API_KEY": "llx", "LLAMA_AGENTS_PROJECT_ID": "p"}
    assert llama_cloud_environment(DeploymentConfig(llama_cloud=False), environ) == {}


def test_a_build_for_publishing_refuses_to_bake_the_key_into_public_assets(
    tmp_path: Path,
) -> None:
    app = make_ui_app(tmp_path, FAKE_DEV)
    deployment = resolve_deployment(app)
    environ = {
        "PATH": "/usr/bin:/bin",
        "LLAMA_CLOUD_API_KEY": "llx-secret",
        "VITE_LLAMA_CLOUD_API_KEY": "llx-secret",
        "PUBLIC_TOKEN": "llx-secret",  # the key's value under another public name
    }
    with pytest.raises(LlamawsError) as refused:
        ui_build.build_ui(deployment, environ, install=False)
    message = str(refused.value)
    assert message.startswith(
        "refusing to build the UI for publishing: PUBLIC_TOKEN, VITE_LLAMA_CLOUD_API_KEY "
        "would bake the LlamaCloud API key into public assets"
    )
    assert "Unset PUBLIC_TOKEN, VITE_LLAMA_CLOUD_API_KEY for the build" in message
    assert not (app / "ui" / "dist").exists()


def test_public_secrets_leave_the_server_side_key_and_other_public_values() -> None:
    env = {"LLAMA_CLOUD_API_KEY": "llx", "VITE_TITLE": "hi", "LLAMA_CLOUD_BASE_URL": "u"}
    assert ui_build.public_secrets(env) == []
    assert ui_build.public_secrets({**env, "NEXT_PUBLIC_LLAMA_CLOUD_API_KEY": "llx"}) == [
        "NEXT_PUBLIC_LLAMA_CLOUD_API_KEY"
    ]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_preview_build_may_hold_the_key_like_llamactl(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = cloud_app(tmp_path, "LLAMA_CLOUD_API_KEY=llx-test\n")
    build = (
        "node -e \"require('fs').mkdirSync('dist',{recursive:true});"
        "require('fs').writeFileSync('dist/index.html',process.env.VITE_LLAMA_CLOUD_API_KEY)\""
    )
    package = app / "ui" / "package.json"
    scripts = json.loads(package.read_text())
    scripts["scripts"]["build"] = build
    package.write_text(json.dumps(scripts))
    emulator = emulator_factory(app, "--preview")
    assert httpx.get(f"{emulator.url}/deployments/hello/ui/").text == "llx-test"
