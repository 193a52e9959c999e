"""The installed package: one ``llamaws`` namespace, no generic top-level names.

A wheel built from the checkout is installed into a fresh venv (no editable hooks,
no repo on ``sys.path``), then an app whose own package is called ``adapter`` is
served from that venv's ``llamaws``: it must not be shadowed by ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from .support import EXAMPLES, ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

GENERIC = ("adapter", "builder", "cli", "infra", "local")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [_uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("llamaws-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("venv") / "venv"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([_uv(), "venv", "--quiet", "--python", python, str(target)], check=True)
    # The same pins as the project's lock: resolution stays offline with a warm cache.
    constraints = target.parent / "constraints.txt"
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    constraints.write_text(exported.stdout)
    subprocess.run(
        [_uv(), "pip", "install", "--quiet", "--python", str(target / "bin" / "python"),
         "-c", str(constraints), str(wheel)],
        check=True,
    )  # fmt: skip
    return target


def test_wheel_holds_only_the_llamaws_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"llamaws"}
    assert "llamaws/adapter/handler.py" in names
    assert "llamaws/local/debugger/static/index.html" in names
    assert {"llamaws/builder/pins/lambda.txt", "llamaws/builder/pins/local.txt"} <= set(names)
    assert "llamaws/builder/templates/cloudfront_function.js.j2" in names
    # llamaws init's project templates, dot-less folders and files included.
    templates = {
        "llamaws/cli/" + path.relative_to(ROOT / "cli").as_posix()
        for path in (ROOT / "cli" / "templates").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "llamaws/cli/templates/init/common/_github/workflows/llamaws.yml.j2" in templates
    assert templates <= set(names), sorted(templates - set(names))


def test_the_installed_init_writes_every_template(venv: Path, tmp_path: Path) -> None:
    for template in ("headless", "hitl", "ui"):
        subprocess.run(
            [str(venv / "bin" / "llamaws"), "init", template, "-t", template, "-n", template,
             "-y"],
            cwd=tmp_path, check=True, capture_output=True, env=_clean_env(),
        )  # fmt: skip
        assert (tmp_path / template / ".github" / "workflows" / "llamaws.yml").is_file()
        assert (tmp_path / template / ".gitignore").is_file()
    assert (tmp_path / "ui" / "ui" / "src" / "main.jsx").is_file()


def test_installed_llamaws_exposes_no_generic_top_level_names(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        f"print(json.dumps([n for n in {GENERIC!r} if importlib.util.find_spec(n)]))\n"
        "import llamaws.adapter.handler\n"
        "print(llamaws.adapter.handler.handler.__module__)\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env=_clean_env(),
    ).stdout.split()
    assert out == ["[]", "llamaws.adapter.handler"]


def test_an_app_whose_package_is_named_adapter_serves(venv: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns("workflows.db*"))
    (app / "src" / "hello").rename(app / "src" / "adapter")
    config = app / "pyproject.toml"
    config.write_text(
        config.read_text().replace("hello.workflows:greet", "adapter.workflows:greet")
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(venv / "bin" / "llamaws"), "serve", str(app), "--port", str(port),
             "--no-reload", "--no-open-browser", "--no-install"],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/deployments/hello/workflows/greet/run"

        def answered() -> httpx.Response | None:
            if process.poll() is not None:
                raise AssertionError(f"serve exited:\n{log.read_text()}")
            return httpx.post(url, json={"start_event": {"name": "Ada"}}, timeout=10)

        response = wait_until(answered, timeout=60, what="the app named 'adapter' to answer")
        assert response.status_code == 200, log.read_text()
        assert response.json()["result"]["value"] == {"result": "Hello, Ada!"}
    finally:
        process.terminate()
        process.wait(timeout=15)


def _uv() -> str:
    found = shutil.which("uv")
    assert found, "uv is needed to build and install the wheel (pip install uv)"
    return found


def _clean_env() -> dict[str, str]:
    """This process's environment without what points at the checkout's venv."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")
    return {k: v for k, v in os.environ.items() if k not in drop}
