"""``llamaws init``: each template renders, installs from the registries, serves, synthesizes
and passes its own test; ``--adopt`` adds only ``[tool.llamaws]`` to the examples; the CI
workflow validates against GitHub's workflow schema."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from llamaws.adapter.config import resolve_deployment
from llamaws.cli.adopt import ADOPT_DEFAULTS
from llamaws.cli.scaffold import TEMPLATES, WORKFLOW_FILE
from llamaws.infra.settings import Settings, read_settings_table, resolve_settings
from llamaws.local.environments import environment_dir

from .support import ROOT, Emulator, parse_llamaws, wait_until

WORKFLOWS = {"headless": ["greet"], "hitl": ["approval"], "ui": ["greet"]}


def llamaws(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def init(directory: Path, template: str, name: str) -> Path:
    done = llamaws("init", str(directory), "--template", template, "--name", name, "--yes")
    assert done.returncode == 0, done.stderr
    return directory


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_renders_a_deployment_with_settings_and_a_valid_ci_workflow(
    tmp_path: Path, template: str
) -> None:
    app = init(tmp_path / "app", template, f"my-{template}")
    deployment = resolve_deployment(app)
    assert deployment.name == f"my-{template}"
    assert sorted(deployment.config.workflows) == WORKFLOWS[template]
    assert (deployment.config.ui is not None) == (template == "ui")
    settings = resolve_settings(deployment)
    assert settings.auth == "key"
    assert (app / "tests" / "test_workflows.py").is_file()

    workflow_file = app / WORKFLOW_FILE
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("check-jsonschema")),
         "--builtin-schema", "vendor.github-workflows", str(workflow_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    workflow = yaml.safe_load(workflow_file.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    check, deploy = workflow["jobs"]["check"], workflow["jobs"]["deploy"]
    runs = [s.get("run", "") for s in check["steps"]]
    assert "python -m pytest" in runs
    assert any("llamaws synth --strict" in run for run in runs)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in check["steps"])
    # Deploys only from main, with a role assumed through OIDC: no stored keys.
    assert "refs/heads/main" in deploy["if"]
    assert deploy["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}
    credentials = next(
        s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", "")
    )
    assert set(credentials["with"]) == {"role-to-assume", "aws-region"}
    assert "secrets." not in workflow_file.read_text()
    # No key is created (and printed) in CI logs.
    assert any(s.get("run") == "llamaws deploy --no-create-key" for s in deploy["steps"])
    # Every llamaws command of the workflow parses with the real CLI.
    commands = [
        shlex.split(s["run"])[1:]
        for job in (check, deploy)
        for s in job["steps"]
        if s.get("run", "").startswith("llamaws ")
    ]
    assert len(commands) == 2
    for args in commands:
        parse_llamaws(args)


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    app = init(tmp_path / "app", "headless", "first")
    pyproject = (app / "pyproject.toml").read_text()
    again = llamaws("init", str(app), "-t", "headless", "-n", "first", "-y")
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr
    assert (app / "pyproject.toml").read_text() == pyproject
    forced = llamaws("init", str(app), "-t", "hitl", "-n", "first", "-y", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "approval" in (app / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["-t", "chat", "-n", "ok"], 2, "--template must be one of headless, hitl, ui"),
        (["-t", "hitl", "-n", "Not A Name"], 1, "is not a deployment name"),
        (["--adopt", "-t", "hitl"], 2, "--adopt keeps the project as it is"),
    ],
)
def test_init_bad_input_is_one_line(tmp_path: Path, args: list[str], code: int, says: str) -> None:
    done = llamaws("init", str(tmp_path / "app"), *args, "-y")
    assert done.returncode == code
    assert done.stderr.startswith("Error: ") and says in done.stderr
    assert done.stderr.count("\n") == 1


def test_init_without_a_name_takes_the_directory_name(tmp_path: Path) -> None:
    app = tmp_path / "My_Approvals"
    done = llamaws("init", str(app), "-y")
    assert done.returncode == 0, done.stderr
    assert resolve_deployment(app).name == "my-approvals"
    assert (app / "src" / "my_approvals" / "workflows.py").is_file()


# -- the generated projects, for real --------------------------------------------------


def _serve(emulator_factory: Callable[..., Emulator], app: Path) -> Emulator:
    # --install: the app's own environment from the package index (or uv's cache), and
    # for the UI its npm packages: minutes on a cold cache, so a generous bound.
    emulator = emulator_factory(app, "--install", wait=False)
    emulator.wait_ready(timeout=300)
    return emulator


def _run_generated_tests(app: Path) -> str:
    python = environment_dir(app) / "bin" / "python"
    assert python.is_file(), "llamaws serve --install made no environment"
    done = subprocess.run(
        [str(python), "-m", "unittest", "discover", "-s", "tests", "-v"],
        cwd=app, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": "src"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr


@pytest.mark.slow
def test_headless_template_serves_and_passes_its_test(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = init(tmp_path / "hello", "headless", "hello-app")
    emulator = _serve(emulator_factory, app)
    answer = httpx.post(
        f"{emulator.url}/deployments/hello-app/workflows/greet/run",
        json={"start_event": {"name": "Ada"}},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["value"]["result"] == "Hello, Ada!"
    assert "Ran 2 tests" in _run_generated_tests(app)


@pytest.mark.slow
def test_hitl_template_serves_an_approval_with_a_wait_token(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = init(tmp_path / "approvals", "hitl", "approvals")
    emulator = _serve(emulator_factory, app)
    base = f"{emulator.url}/deployments/approvals"
    started = httpx.post(f"{base}/workflows/approval/run-nowait", json={"start_event": {}})
    assert started.status_code == 200, started.text
    handler = started.json()["handler_id"]

    def token() -> str | None:
        waits = httpx.get(f"{base}/handlers/{handler}/waits", timeout=10).json()["waits"]
        return str(waits[0]["token"]) if waits else None

    wait_token = wait_until(token, timeout=60, what="the approval's wait token")
    approved = httpx.post(
        f"{base}/tokens/{wait_token}/success",
        json={"event": {"type": "Approved", "value": {"approver": "ada"}}},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text

    def result() -> object:
        body = httpx.get(f"{base}/results/{handler}", timeout=10)
        found = body.json().get("result") if body.status_code == 200 else None
        return found["value"]["result"] if isinstance(found, dict) else found

    assert wait_until(result, timeout=60, what="the result") == "Approved by ada"
    assert "Ran 3 tests" in _run_generated_tests(app)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="the ui template needs Node.js and npm")
def test_ui_template_serves_its_ui_and_passes_its_test(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = init(tmp_path / "shop", "ui", "shop")
    emulator = _serve(emulator_factory, app)

    def page() -> str | None:
        served = httpx.get(f"{emulator.url}/deployments/shop/ui/", timeout=10)
        return served.text if served.status_code == 200 else None

    html = wait_until(page, timeout=120, what="the UI dev server")
    assert '<div id="root">' in html
    # The dev server serves the app's module under the base path (the contract).
    module = httpx.get(f"{emulator.url}/deployments/shop/ui/src/App.jsx", timeout=30)
    assert module.status_code == 200 and "@llamaindex_ui" in module.text, module.text[:500]
    assert "Ran 1 test" in _run_generated_tests(app)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("aws_cdk") is None, reason="needs llamaws[cdk]")
@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_synthesizes_strict(tmp_path: Path, template: str) -> None:
    app = init(tmp_path / "app", template, f"synth-{template}")
    done = llamaws("synth", str(app), "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 unacknowledged finding(s)" in done.stdout
    assert "cfn-lint: 0 error(s)" in done.stdout


# -- --adopt ----------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["hello", "hitl", "ui-app"])
def test_adopt_adds_only_the_llamaws_table(
    example_copy: Callable[[str], Path], example: str
) -> None:
    app = example_copy(example)
    pyproject = app / "pyproject.toml"
    before = pyproject.read_text()
    files_before = sorted(p.relative_to(app) for p in app.rglob("*") if p.is_file())
    done = llamaws("init", "--adopt", str(app))
    assert done.returncode == 0, done.stderr
    assert "added [tool.llamaws]" in done.stdout
    after = pyproject.read_text()
    assert after.startswith(before)
    assert tomllib.loads(after)["tool"]["llamaws"] == ADOPT_DEFAULTS
    assert sorted(p.relative_to(app) for p in app.rglob("*") if p.is_file()) == files_before
    settings = resolve_settings(resolve_deployment(app))
    defaults = Settings(deployment=settings.deployment)
    assert settings == defaults  # what adopt writes is the documented defaults

    again = llamaws("init", "--adopt", str(app))
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert pyproject.read_text() == after


def test_adopt_outside_a_project_is_one_line(tmp_path: Path) -> None:
    done = llamaws("init", "--adopt", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1


def test_init_on_a_terminal_asks_with_defaults(tmp_path: Path) -> None:
    """On a terminal, init asks for the template and the name (Enter takes the default)."""
    import pty

    app = tmp_path / "asked"
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "llamaws.cli.main", "init", str(app)],
        stdin=secondary, stdout=secondary, stderr=secondary, cwd=ROOT,
    )  # fmt: skip
    os.close(secondary)
    output = b""
    answers = [(b"Template [headless]:", b"chat\n"), (b"Choose one of", b"hitl\n"),
               (b"Deployment name [asked]:", b"\n")]  # fmt: skip
    try:
        while process.poll() is None or answers:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if answers and answers[0][0] in output:
                os.write(main, answers.pop(0)[1])
    finally:
        process.wait(timeout=60)
        os.close(main)
    assert process.returncode == 0, output.decode()
    assert not answers, output.decode()
    assert resolve_deployment(app).name == "asked"
    assert sorted(resolve_deployment(app).config.workflows) == ["approval"]


def test_adopt_writes_into_a_llama_deploy_toml_where_llamaws_reads_it(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "src" / "hello").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "hello" / "src" / "hello" / "workflows.py",
                app / "src" / "hello" / "workflows.py")  # fmt: skip
    config = app / "llama_deploy.toml"
    before = (
        'name = "toml-app"  # a comment adopt keeps\n\n[workflows]\ngreet = "hello.workflows:greet"'
    )
    config.write_text(before)  # no newline at the end
    done = llamaws("init", "--adopt", str(app))
    assert done.returncode == 0, done.stderr
    assert config.read_text().startswith(before + "\n")
    assert not (app / "pyproject.toml").exists()
    table, source = read_settings_table(resolve_deployment(app))
    assert source == config and table == ADOPT_DEFAULTS
