"""What stops ``llamaws deploy`` says so in one line, with what to do.

Against a moto server of this module (each case in its own region), before anything
is built: no Node.js, no AWS credentials, an account and region not bootstrapped, a
stack in a state CloudFormation cannot update (and its recovery, followed). Then the
recovery advice for every failed state, the CDK CLI's known failures, and where the
CDK CLI comes from, as plain values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from llamaws.cli.deploy_phases import _cdk_failure
from llamaws.infra.cdk_cli import CDK_CLI_VERSION, CdkRun, locate_cdk_cli
from llamaws.infra.deploy_errors import (
    CdkFailed,
    CredentialsMissing,
    NotBootstrapped,
    StackNotDeployable,
)
from llamaws.infra.stacks import StackState, check_deployable, recovery_hint
from llamaws.infra.target import AwsTarget
from llamaws.local.engine import LocalEngine, start_local_engine

from .engines import AWS_TEST_ENV
from .support import EXAMPLES, ROOT

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def engine(aws_env: dict[str, str]) -> Iterator[LocalEngine]:
    started = start_local_engine()
    yield started
    started.stop()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", target, ignore=shutil.ignore_patterns(".llamaws"))
    return target


def environment(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_TEST_ENV)
    env.update(PYTHONPATH=str(ROOT), COLUMNS="200", AWS_EC2_METADATA_DISABLED="true")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def deploy(
    app: Path, engine: LocalEngine, *args: str, **env: str | None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", "deploy", str(app),
         "--endpoint-url", engine.endpoint, *args],
        cwd=ROOT, env=environment(**env), capture_output=True, text=True, timeout=100,
        check=False,
    )  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit 1 and exactly one ``Error:`` line, the last one."""
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors == [lines[-1]], done.stderr
    assert "Traceback" not in done.stderr
    return lines[-1]


def cloudformation(engine: LocalEngine, region: str) -> Any:
    return boto3.client("cloudformation", endpoint_url=engine.endpoint, region_name=region)


def bootstrapped(engine: LocalEngine, region: str) -> None:
    """A CDKToolkit stack in ``region`` (what the bootstrap check looks for)."""
    template = {"Resources": {"Marker": {"Type": "AWS::SQS::Queue"}}}
    cloudformation(engine, region).create_stack(
        StackName="CDKToolkit", TemplateBody=json.dumps(template)
    )


# -- through the CLI ------------------------------------------------------------------


def test_no_node_is_one_line(app: Path, engine: LocalEngine, tmp_path: Path) -> None:
    line = one_error_line(deploy(app, engine, PATH=str(tmp_path)))
    assert line.startswith("Error: Node.js was not found: the AWS CDK CLI")
    assert "Install Node.js 22" in line


def test_no_aws_credentials_is_one_line(app: Path, engine: LocalEngine) -> None:
    done = deploy(
        app,
        engine,
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_SESSION_TOKEN=None,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_CONFIG_FILE=os.devnull,
    )
    line = one_error_line(done)
    assert line.startswith("Error: no AWS credentials found")
    assert "aws configure" in line


def test_an_account_not_bootstrapped_is_one_line_naming_the_command(
    app: Path, engine: LocalEngine
) -> None:
    line = one_error_line(deploy(app, engine, "--region", "eu-west-3"))
    assert line.startswith(
        f"Error: aws://123456789012/eu-west-3 at {engine.endpoint} is not bootstrapped"
    )
    assert f"Run `llamaws bootstrap --endpoint-url {engine.endpoint} --region eu-west-3`" in line


def test_a_stack_whose_create_did_not_complete_is_one_line_and_the_recovery_works(
    app: Path, engine: LocalEngine
) -> None:
    bootstrapped(engine, "eu-west-2")
    cloudformation(engine, "eu-west-2").create_change_set(
        StackName="llamaws-hello",
        ChangeSetName="never-executed",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}),
    )
    line = one_error_line(deploy(app, engine, "--region", "eu-west-2"))
    recovery = f"llamaws destroy --yes --endpoint-url {engine.endpoint} --region eu-west-2"
    assert line.startswith("Error: stack llamaws-hello is REVIEW_IN_PROGRESS")
    assert f"remove it with `{recovery}`, then deploy again" in line
    destroyed = subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", *recovery.split()[1:3], str(app),
         *recovery.split()[3:]],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert destroyed.returncode == 0, destroyed.stderr
    assert cloudformation(engine, "eu-west-2").describe_stacks()["Stacks"][0]["StackName"] == (
        "CDKToolkit"
    )


def test_deploy_warns_when_auth_is_none_before_anything_else(
    app: Path, engine: LocalEngine
) -> None:
    done = deploy(app, engine, "--region", "ap-south-1", "--setting", "auth=none")
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith('Warning: auth = "none": the deployed API answers anyone')
    assert "is not bootstrapped" in lines[-1]


def test_bootstrap_without_node_is_one_line(engine: LocalEngine, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", "bootstrap", "--endpoint-url",
         engine.endpoint],
        cwd=ROOT, env=environment(PATH=str(tmp_path)), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert one_error_line(done).startswith("Error: Node.js was not found")


# -- as values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("ROLLBACK_COMPLETE", "remove it with `llamaws destroy --yes`, then deploy again"),
        ("ROLLBACK_FAILED", "remove it with `llamaws destroy --yes`, then deploy again"),
        ("CREATE_FAILED", "remove it with `llamaws destroy --yes`, then deploy again"),
        ("REVIEW_IN_PROGRESS", "remove it with `llamaws destroy --yes`, then deploy again"),
        ("UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback --stack-name s"),
        ("DELETE_FAILED", "Run `llamaws destroy --yes` again"),
        ("UPDATE_IN_PROGRESS", "wait for it to end (`llamaws status`)"),
        ("DELETE_IN_PROGRESS", "wait for it to end (`llamaws status`)"),
    ],
)
def test_every_state_a_deploy_cannot_update_says_how_to_recover(status: str, advice: str) -> None:
    state = StackState(name="s", status=status, stack_id="id")
    with pytest.raises(StackNotDeployable) as raised:
        check_deployable(state)
    assert str(raised.value).startswith(f"stack s is {status}")
    assert advice in recovery_hint(state)


@pytest.mark.parametrize(
    "status", ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", None]
)
def test_states_a_deploy_can_update_pass(status: str | None) -> None:
    check_deployable(None if status is None else StackState("s", status, "id"))


def test_the_cdk_clis_known_failures_become_their_own_errors() -> None:
    def failure(*tail: str) -> Exception:
        return _cdk_failure("deploy", CdkRun(1, tail), "llamaws-x", "aws://1/r", "")

    stuck = failure(
        "❌  llamaws-x failed: ValidationError: Stack:arn:… is in UPDATE_ROLLBACK_FAILED "
        "state and can not be updated."
    )
    assert isinstance(stuck, StackNotDeployable)
    assert "continue-update-rollback --stack-name llamaws-x" in str(stuck)
    not_bootstrapped = failure(
        "❌  llamaws-x failed: llamaws-x: SSM parameter /cdk-bootstrap/hnb659fds/version not "
        "found. Has the environment been bootstrapped? Please run 'cdk bootstrap'"
    )
    assert isinstance(not_bootstrapped, NotBootstrapped)
    assert "Run `llamaws bootstrap`" in str(not_bootstrapped)
    credentials = failure("Unable to resolve AWS account to use. It must be either configured…")
    assert isinstance(credentials, CredentialsMissing)
    other = failure("some output", "❌  llamaws-x failed: Resource handler returned message: boom")
    assert isinstance(other, CdkFailed)
    assert str(other).startswith("cdk deploy failed (exit 1): llamaws-x failed: Resource")
    assert other.tail[-1].endswith("boom")


def test_a_local_engine_gets_a_named_host_for_cloudformations_template_url() -> None:
    target = AwsTarget.resolve("http://127.0.0.1:5123", None, {})
    env = target.cli_environment({"PATH": "/bin"})
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5123"
    assert env["AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION"] == "http://localhost:5123"
    assert env["CDK_DISABLE_VERSION_CHECK"] == "1"
    assert target.local and not AwsTarget.resolve(None, "eu-west-1", {}).local
    assert AwsTarget.resolve(None, None, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}).local


def test_the_cdk_cli_version_is_the_one_package_json_pins() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert pinned == CDK_CLI_VERSION


def test_a_projects_own_cdk_cli_is_used_when_recent_enough(tmp_path: Path) -> None:
    installed = ROOT / "node_modules" / "aws-cdk"
    if not (installed / "bin" / "cdk").is_file() or shutil.which("node") is None:
        pytest.skip("the repository's CDK CLI is not installed (npm ci)")
    project = tmp_path / "project"
    (project / "node_modules").mkdir(parents=True)
    (project / "node_modules" / "aws-cdk").symlink_to(installed, target_is_directory=True)
    (project / "apps" / "hello").mkdir(parents=True)
    cache = tmp_path / "cache"
    found = locate_cdk_cli(project / "apps" / "hello", environ={**os.environ,
                           "LLAMAWS_CACHE_DIR": str(cache)})  # fmt: skip
    assert found.package_dir == project / "node_modules" / "aws-cdk"
    assert not cache.exists()  # nothing installed


def test_an_older_project_cdk_cli_is_passed_over_for_llamaws_own(tmp_path: Path) -> None:
    installed = ROOT / "node_modules" / "aws-cdk"
    if not (installed / "bin" / "cdk").is_file() or shutil.which("node") is None:
        pytest.skip("the repository's CDK CLI is not installed (npm ci)")
    old = tmp_path / "app" / "node_modules" / "aws-cdk"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "cdk").write_text("#!/usr/bin/env node\n")
    (old / "package.json").write_text(json.dumps({"name": "aws-cdk", "version": "2.100.0"}))
    cache = tmp_path / "cache"
    owned = cache / "cdk-cli" / CDK_CLI_VERSION / "node_modules"
    owned.mkdir(parents=True)
    (owned / "aws-cdk").symlink_to(installed, target_is_directory=True)  # as if installed
    found = locate_cdk_cli(tmp_path / "app", environ={**os.environ,
                           "LLAMAWS_CACHE_DIR": str(cache)})  # fmt: skip
    assert found.package_dir == owned / "aws-cdk" and found.version == CDK_CLI_VERSION
