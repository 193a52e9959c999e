"""Stack settings: ``[tool.llamaws]`` then flags, resolved without the CDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.errors import ConfigError
from llamaws.infra.settings import resolve_settings

from .support import EXAMPLES, ROOT


def app_with(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "demo"
            version = "0.1.0"

            [tool.llamadeploy]
            name = "demo.app"
            workflows = { echo = "demo:echo" }

            [tool.llamaws]
            """
        )
        + textwrap.dedent(table)
    )
    return tmp_path


def test_defaults_without_a_llamaws_table() -> None:
    settings = resolve_settings(resolve_deployment(EXAMPLES / "hello"))
    assert settings.resolved_stack_name == "llamaws-hello"
    assert (settings.architecture, settings.python) == ("arm64", "3.12")
    assert settings.point_in_time_recovery and settings.deletion_protection
    assert settings.retain_on_delete and settings.secrets == "ssm"
    assert settings.parameter_path == "/llamaws/llamaws-hello/env"
    assert settings.base_path == "/deployments/hello"


def test_table_values_apply_and_flags_override_them(tmp_path: Path) -> None:
    app = app_with(tmp_path, 'memory_mb = 2048\nstage = "dev"\narchitecture = "x86_64"\n')
    deployment = resolve_deployment(app)
    from_file = resolve_settings(deployment)
    assert (from_file.memory_mb, from_file.stage, from_file.architecture) == (2048, "dev", "x86_64")
    # Unsafe characters of the deployment name become '-' in the stack name.
    assert from_file.resolved_stack_name == "llamaws-demo-app-dev"
    flagged = resolve_settings(deployment, {"memory_mb": "512", "stage": None, "stage_x": None})
    assert flagged.memory_mb == 512 and flagged.stage == "dev"


def test_unknown_setting_is_one_line_naming_the_file(tmp_path: Path) -> None:
    deployment = resolve_deployment(app_with(tmp_path, "memroy_mb = 1\n"))
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.llamaws\] field 'memroy_mb'"):
        resolve_settings(deployment)


def test_invalid_value_from_a_flag_says_so(tmp_path: Path) -> None:
    deployment = resolve_deployment(app_with(tmp_path, ""))
    with pytest.raises(ConfigError, match=r"flag or context.*'log_retention_days'"):
        resolve_settings(deployment, {"log_retention_days": "31"})
    with pytest.raises(ConfigError, match=r"'stack_customizers'.*module:function"):
        resolve_settings(deployment, {"stack_customizers": "not a target"})


def test_resolving_settings_imports_no_cdk() -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from llamaws.adapter.config import resolve_deployment\n"
        "from llamaws.infra.settings import resolve_settings\n"
        f"resolve_settings(resolve_deployment(Path({str(EXAMPLES / 'hello')!r})))\n"
        "import llamaws.cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aws_cdk', 'constructs', 'cdk_nag', 'cfnlint', 'jsii')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_wait_token_defaults_are_settings_the_stack_accepts(tmp_path: Path) -> None:
    app = app_with(tmp_path, "wait_timeout_seconds = 86400\nwait_heartbeat_seconds = 3600\n")
    settings = resolve_settings(resolve_deployment(app))
    assert (settings.wait_timeout_seconds, settings.wait_heartbeat_seconds) == (86400, 3600)
