"""``llamaws serve`` failures: exit 1 with one ``Error: ...`` line, never a traceback.

Each case runs the real CLI in a subprocess (``python -m llamaws.cli.main serve``) against a
small app written to a temp dir. Every run fails before serving; the runs start
together (each spends ~1.5 s importing) and each test checks its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import ROOT, free_port

SERVE_FLAGS = ("--no-reload", "--no-open-browser", "--no-install")
# No AWS credentials or region from anywhere (and no metadata-service lookups).
NO_AWS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL",
)  # fmt: skip
NO_AWS_FILES = (
    ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
    ("AWS_CONFIG_FILE", "/nonexistent/config"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
)
REQUIRED = ("LLAMAWS_TEST_REQUIRED_B", "LLAMAWS_TEST_REQUIRED_A")
MISSING_DEPENDENCY = "llamaws_test_missing_dependency"

ECHO_WORKFLOW = """
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class Echo(Workflow):
    @step
    async def echo(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=ev.get("message"))


echo = Echo(timeout=None)
"""


def make_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@dataclass
class Run:
    """One ``llamaws serve`` invocation and, once finished, its outcome."""

    app: Path
    port: int
    args: tuple[str, ...] = ()
    unset: tuple[str, ...] = ()
    flags: tuple[str, ...] = SERVE_FLAGS
    env: tuple[tuple[str, str], ...] = ()
    returncode: int | None = None
    stderr: str = ""


def cases(root: Path, busy_port: int) -> dict[str, Run]:
    """The failing invocations, by name."""
    empty = root / "empty"
    empty.mkdir()
    echo = make_app(
        root / "echo",
        {
            "llama_deploy.toml": 'name = "echo"\n[workflows]\necho = "flows:echo"\n',
            "flows.py": ECHO_WORKFLOW,
        },
    )
    required = ", ".join(f'"{name}"' for name in REQUIRED)
    return {
        "missing": Run(root / "no-such-app", free_port()),
        "empty": Run(empty, free_port()),
        "invalid": Run(
            make_app(
                root / "invalid",
                {
                    "llama_deploy.toml": '[workflows]\necho = "flows.echo"\n',
                },
            ),
            free_port(),
        ),
        "env": Run(
            make_app(
                root / "needs-env",
                {
                    "llama_deploy.toml": f"required_env_vars = [{required}]\n"
                    '[workflows]\necho = "flows:echo"\n',
                    "flows.py": ECHO_WORKFLOW,
                },
            ),
            free_port(),
            unset=REQUIRED,
        ),
        "broken": Run(
            make_app(
                root / "broken",
                {
                    "llama_deploy.toml": '[workflows]\necho = "broken:echo"\n',
                    "broken.py": 'raise RuntimeError("boom at import")\n',
                },
            ),
            free_port(),
        ),
        "typo": Run(
            make_app(
                root / "typo",
                {
                    "llama_deploy.toml": '[workflows]\necho = "flowz:echo"\n',
                    "flows.py": ECHO_WORKFLOW,
                },
            ),
            free_port(),
        ),
        "dependency": Run(
            make_app(
                root / "needs-dep",
                {
                    "llama_deploy.toml": 'app = "server:app"\n',
                    "server.py": f"import {MISSING_DEPENDENCY}\n",
                },
            ),
            free_port(),
        ),
        "dependency-install": Run(
            make_app(
                root / "needs-dep-install",
                {
                    "pyproject.toml": '[project]\nname = "needs-dep"\nversion = "0"\n'
                    'dependencies = []\n[tool.llamadeploy]\napp = "server:app"\n',
                    "server.py": f"import {MISSING_DEPENDENCY}\n",
                },
            ),
            free_port(),
            flags=("--no-reload", "--no-open-browser"),
        ),
        "port": Run(echo, busy_port),
        "port-too-big": Run(echo, 99999),
        "port-negative": Run(echo, -1),
        "log-level": Run(echo, free_port(), args=("--log-level", "LOUD")),
        "env-file": Run(
            make_app(
                root / "env-file",
                {
                    "llama_deploy.toml": 'env_files = [".env.missing"]\n'
                    '[workflows]\necho = "broken:echo"\n',
                    "broken.py": 'raise RuntimeError("boom at import")\n',
                },
            ),
            free_port(),
        ),
        "requires-python": Run(
            make_app(
                root / "new-python",
                {
                    "pyproject.toml": '[project]\nname = "new-python"\nversion = "0"\n'
                    'requires-python = ">=3.99"\n'
                    '[tool.llamadeploy.workflows]\necho = "broken:echo"\n',
                    "broken.py": 'raise RuntimeError("boom at import")\n',
                },
            ),
            free_port(),
        ),
        "dynamodb-credentials": Run(
            echo,
            free_port(),
            args=(
                "--persistence",
                "dynamodb",
                "--dynamodb-endpoint",
                f"http://127.0.0.1:{busy_port}",
            ),
            unset=NO_AWS,
            env=NO_AWS_FILES,
            flags=("--no-open-browser", "--no-install"),  # with reload: no "save to reload"
        ),
        "dynamodb-region": Run(
            echo,
            free_port(),
            args=("--persistence", "dynamodb"),
            unset=NO_AWS,
            env=NO_AWS_FILES,
            flags=("--no-open-browser", "--no-install"),
        ),
        "lambda-memory": Run(echo, free_port(), args=("--lambda", "--persistence", "memory")),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every case, run concurrently to completion (a timeout guards a run that serves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        planned = cases(tmp_path_factory.mktemp("cli-errors"), int(busy.getsockname()[1]))
        processes: dict[str, subprocess.Popen[str]] = {}
        try:
            for name, run in planned.items():
                env = {k: v for k, v in os.environ.items() if k not in run.unset}
                env.update(run.env)
                command = [
                    sys.executable,
                    "-m",
                    "llamaws.cli.main",
                    "serve",
                    str(run.app),
                    *run.flags,
                    "--port",
                    str(run.port),
                    *run.args,
                ]
                processes[name] = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    text=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            for name, process in processes.items():
                try:
                    _, stderr = process.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()  # it served instead of failing: the test reports it
                    _, stderr = process.communicate()
                    stderr += "\n(still running after 60 s: killed)"
                planned[name].returncode, planned[name].stderr = process.returncode, stderr
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    yield planned


def only_line(run: Run, code: int = 1) -> str:
    """The single stderr line of a run that failed before starting anything."""
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("Error: "), run.stderr
    return lines[0]


def warnings(run: Run) -> list[str]:
    """The warning lines of a run that then failed with one ``Error:`` line."""
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and len(lines) >= 2, run.stderr
    assert all(line.startswith("llamaws: warning: ") for line in lines[:-1]), run.stderr
    return lines[:-1]


def error_line(run: Run) -> str:
    """The one ``Error:`` line of a run that failed while loading the app.

    Nothing else is printed: not even the "serving at" line, which only comes once
    the app is built.
    """
    return only_line(run)


def test_serve_missing_path_fails_with_one_line(runs: dict[str, Run]) -> None:
    run = runs["missing"]
    assert only_line(run) == f"Error: Deployment file '{run.app}' not found"


def test_serve_directory_without_config_fails_with_one_line(runs: dict[str, Run]) -> None:
    run = runs["empty"]
    assert only_line(run).startswith(f"Error: No pyproject.toml found at {run.app.resolve()}.")


def test_serve_invalid_config_names_file_and_field(runs: dict[str, Run]) -> None:
    run = runs["invalid"]
    config = (run.app / "llama_deploy.toml").resolve()
    assert only_line(run).startswith(f"Error: {config}: field 'workflows': ")


def test_serve_missing_required_env_vars_fails_with_one_line(runs: dict[str, Run]) -> None:
    assert only_line(runs["env"]).startswith(
        "Error: Missing required environment variables defined in required_env_vars: "
        "LLAMAWS_TEST_REQUIRED_A, LLAMAWS_TEST_REQUIRED_B."
    )


def test_serve_workflow_module_failing_to_import_names_the_target(runs: dict[str, Run]) -> None:
    assert error_line(runs["broken"]) == (
        "Error: cannot import 'broken:echo' (workflows.echo): RuntimeError: boom at import"
    )


def test_serve_workflow_module_not_found_names_the_target(runs: dict[str, Run]) -> None:
    assert error_line(runs["typo"]).startswith(
        "Error: cannot import 'flowz:echo' (workflows.echo): no module named 'flowz'"
    )


def test_serve_app_with_missing_dependency_names_the_distribution_and_the_flag_passed(
    runs: dict[str, Run],
) -> None:
    line = error_line(runs["dependency"])
    assert line.startswith(
        f"Error: cannot import 'server:app' (app): it needs the module "
        f"'{MISSING_DEPENDENCY}', which is not installed. "
    )
    distribution = MISSING_DEPENDENCY.replace("_", "-")
    assert f"Add '{distribution}' to the app's [project].dependencies" in line
    assert "without --no-install" in line


def test_serve_with_install_names_no_flag_for_a_missing_dependency(runs: dict[str, Run]) -> None:
    run = runs["dependency-install"]
    assert run.returncode == 1, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: cannot import 'server:app' (app): it needs the module"), line
    assert f"Add '{MISSING_DEPENDENCY.replace('_', '-')}'" in line
    assert "--no-install" not in run.stderr and "Traceback" not in run.stderr


def test_serve_port_in_use_fails_with_one_punctuated_line(runs: dict[str, Run]) -> None:
    run = runs["port"]
    assert only_line(run) == (
        f"Error: port {run.port} on 127.0.0.1 is already in use. Stop the other server or "
        "pass --port."
    )


@pytest.mark.parametrize("case", ["port-too-big", "port-negative"])
def test_serve_port_out_of_range_is_a_usage_error(runs: dict[str, Run], case: str) -> None:
    run = runs[case]
    assert only_line(run, code=2) == (
        f"Error: --port must be a port number from 1 to 65535 (0: any free one), not {run.port}"
    )


def test_serve_missing_env_file_is_named_in_a_warning(runs: dict[str, Run]) -> None:
    run = runs["env-file"]
    missing = (run.app / ".env.missing").resolve()
    assert warnings(run) == [
        f"llamaws: warning: the env file {missing} listed in env_files does not exist; "
        "it is skipped."
    ]


def test_serve_unsatisfied_requires_python_is_a_warning_naming_both_versions(
    runs: dict[str, Run],
) -> None:
    (line,) = warnings(runs["requires-python"])
    here = ".".join(map(str, sys.version_info[:3]))
    assert f"the app requires Python >=3.99 but llamaws runs on Python {here}" in line


def test_serve_dynamodb_without_credentials_says_dummy_ones_do_for_a_local_engine(
    runs: dict[str, Run],
) -> None:
    line = only_line(runs["dynamodb-credentials"])
    assert "NoCredentialsError" in line
    assert "A local engine accepts any credentials" in line
    assert "save" not in line


def test_serve_dynamodb_without_region_says_to_set_one(runs: dict[str, Run]) -> None:
    line = only_line(runs["dynamodb-region"])
    assert "NoRegionError" in line and "Set AWS_REGION" in line
    assert "save" not in line


def test_serve_lambda_with_memory_persistence_refuses_before_any_banner(
    runs: dict[str, Run],
) -> None:
    assert only_line(runs["lambda-memory"]).startswith(
        "Error: --lambda keeps runs in DynamoDB: --persistence memory is not shared"
    )


def test_serve_bad_log_level_exits_2(runs: dict[str, Run]) -> None:
    line = only_line(runs["log-level"], code=2)
    assert "--log-level" in line and "'LOUD'" in line
