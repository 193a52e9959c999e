"""The CDK app (``infra/``): template assertions, cdk-nag, cfn-lint, determinism, idle cost.

One module (one process): the first synth of a process starts jsii (seconds), later
ones take a fraction of that. The Lambda code is a small deterministic zip here; the
real bundle is tested in ``test_lambda_bundle.py`` and through ``llamaws synth``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK libraries (llamaws[cdk]) are not installed")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.store.table import TTL_ATTRIBUTE, table_definition
from llamaws.builder.deterministic_zip import write_zip
from llamaws.builder.static_rules import cloudfront_function_code
from llamaws.infra.app import build_app, synthesize
from llamaws.infra.lint import CDK_NOISE, lint_template
from llamaws.infra.nag import acknowledgements, nag_findings
from llamaws.infra.settings import resolve_settings
from llamaws.infra.stack import TABLE_ACTIONS, LlamawsStack, StackInputs

from .support import EXAMPLES, ROOT

pytestmark = pytest.mark.slow

SECRET_VALUE = "sk-live-7c1f00d5e9ab4f0b"
Build = Callable[..., tuple[Any, LlamawsStack]]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="module")
def code(work: Path) -> Path:
    source = work / "code"
    (source / "llamaws" / "adapter").mkdir(parents=True)
    (source / "llamaws" / "adapter" / "handler.py").write_text("def handler(e, c): return {}\n")
    zipped = work / "code.zip"
    write_zip(source, zipped)
    return zipped


@pytest.fixture(scope="module")
def app_with_env(work: Path) -> Path:
    """examples/ui-app with an env file holding a secret (and a customizer module)."""
    app = work / "ui-app"
    shutil.copytree(
        EXAMPLES / "ui-app", app, ignore=shutil.ignore_patterns("node_modules", ".llamaws")
    )
    (app / ".env").write_text(f"OPENAI_API_KEY={SECRET_VALUE}\nGREETING=hello-from-env\n")
    text = (app / "pyproject.toml").read_text()
    text = text.replace("[tool.llamadeploy]\n", '[tool.llamadeploy]\nenv_files = [".env"]\n', 1)
    (app / "pyproject.toml").write_text(text)
    (app / "src" / "stack_tweaks.py").write_text(
        textwrap.dedent(
            """
            from aws_cdk import Tags

            def tag(stack):
                Tags.of(stack).add("team", "agents")
            """
        )
    )
    return app


@pytest.fixture(scope="module")
def build(code: Path) -> Build:
    def make(app_dir: Path, ui: bool = True, **overrides: object) -> tuple[Any, LlamawsStack]:
        deployment = resolve_deployment(app_dir)
        settings = resolve_settings(deployment, overrides)
        ui_code = (
            cloudfront_function_code(f"{settings.base_path}/ui", ["index.html"])
            if ui and deployment.config.ui is not None
            else None
        )
        inputs = StackInputs(settings, code, ui_code, tuple(deployment.python_paths))
        return build_app(inputs)

    return make


@pytest.fixture(scope="module")
def ui_stack(build: Build, app_with_env: Path) -> tuple[Any, LlamawsStack]:
    return build(app_with_env)


@pytest.fixture(scope="module")
def template(ui_stack: tuple[Any, LlamawsStack]) -> Template:
    return Template.from_stack(ui_stack[1])


@pytest.fixture(scope="module")
def custom_stack(build: Build) -> tuple[Any, LlamawsStack]:
    """The headless example with every setting away from its default."""
    return build(
        EXAMPLES / "hello",
        stage="dev",
        auth="iam",
        architecture="x86_64",
        python="3.13",
        memory_mb=2048,
        timeout_seconds=120,
        reserved_concurrency=5,
        log_retention_days=7,
        async_retries=0,
        sweep_minutes=0,
        point_in_time_recovery=False,
        deletion_protection=False,
        retain_on_delete=False,
        secrets="secretsmanager",
        access_logs=False,
        domain_name="agents.example.com",
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        price_class="All",
        streaming=False,
    )


@pytest.fixture(scope="module")
def custom(custom_stack: tuple[Any, LlamawsStack]) -> Template:
    return Template.from_stack(custom_stack[1])


def only(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(kind)
    assert len(found) == 1, f"{kind}: {sorted(found)}"
    logical_id, resource = next(iter(found.items()))
    return logical_id, dict(resource)


def props(template: Template, kind: str) -> dict[str, Any]:
    return dict(only(template, kind)[1]["Properties"])


def function_props(template: Template) -> dict[str, Any]:
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "llamaws.adapter.handler.handler"}}
    )
    assert len(functions) == 1
    return dict(next(iter(functions.values()))["Properties"])


# -- state ------------------------------------------------------------------------


def test_table_follows_the_store_schema_on_demand_with_pitr_ttl_and_protection(
    template: Template,
) -> None:
    definition = table_definition("x")
    logical_id, table = only(template, "AWS::DynamoDB::Table")
    assert logical_id == "RunsTable"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == definition["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=str) == sorted(
        definition["AttributeDefinitions"], key=str
    )
    (index,) = properties["GlobalSecondaryIndexes"]
    (expected,) = definition["GlobalSecondaryIndexes"]
    assert {k: index[k] for k in ("IndexName", "KeySchema", "Projection")} == expected
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert properties["DeletionProtectionEnabled"] is True
    assert "ProvisionedThroughput" not in properties
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_table_protection_and_retention_can_be_turned_off(custom: Template) -> None:
    _, table = only(custom, "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert properties["DeletionProtectionEnabled"] is False
    assert table["DeletionPolicy"] == "Delete"


def test_spill_bucket_is_private_encrypted_tls_only_and_expires_spilled_payloads(
    template: Template, moto_endpoint_free_client_prefix: str
) -> None:
    bucket = template.to_json()["Resources"]["SpillBucket"]
    properties = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 45 and rule["Status"] == "Enabled"
    # The rule covers the keys the store really writes.
    assert moto_endpoint_free_client_prefix.startswith(rule["Prefix"])
    assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    _assert_tls_only(template, "SpillBucket")


@pytest.fixture
def moto_endpoint_free_client_prefix() -> str:
    """The key prefix the store's spill writes use (no AWS call is made)."""
    from llamaws.adapter.store.client import TableClient

    client = TableClient("t", region_name="us-east-1", s3_bucket="b")
    assert client.spill is not None
    return client.spill.prefix + "/"


def _assert_tls_only(template: Template, bucket_id: str) -> None:
    policies = template.find_resources(
        "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": bucket_id}}}
    )
    (policy,) = policies.values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


# -- function ---------------------------------------------------------------------


def test_function_runs_the_handler_on_python_arm64_with_the_env_contract(
    template: Template,
) -> None:
    properties = function_props(template)
    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["arm64"]
    assert (properties["MemorySize"], properties["Timeout"]) == (1024, 300)
    assert "ReservedConcurrentExecutions" not in properties
    variables = properties["Environment"]["Variables"]
    # docs/lambda.md's contract: the table, the spill bucket, where the env values are.
    assert variables == {
        "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/llamaws/adapter/lambda_runtime/exec_wrapper",
        "LLAMAWS_AUTH": "key",
        "LLAMAWS_TABLE": {"Ref": "RunsTable"},
        "LLAMAWS_S3_BUCKET": {"Ref": "SpillBucket"},
        "LLAMAWS_SSM_PATH": "/llamaws/llamaws-ui-app/env",
    }
    assert properties["Code"]["S3Key"].endswith(".zip")


def test_function_settings_come_from_the_llamaws_table_and_flags(custom: Template) -> None:
    properties = function_props(custom)
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["x86_64"]
    assert (properties["MemorySize"], properties["Timeout"]) == (2048, 120)
    assert properties["ReservedConcurrentExecutions"] == 5
    variables = properties["Environment"]["Variables"]
    assert "LLAMAWS_SSM_PATH" not in variables
    assert variables["LLAMAWS_SECRET_ARN"] == {"Ref": "AppSecret"}
    custom.resource_count_is("AWS::Events::Rule", 0)


def test_logs_go_to_an_explicit_log_group_with_retention(
    template: Template, custom: Template
) -> None:
    log_group_id, log_group = only(template, "AWS::Logs::LogGroup")
    assert log_group["Properties"]["RetentionInDays"] == 30
    # JSON lines: the runtime writes each record's extra fields (handler_id, run_id),
    # which `llamaws logs --handler` filters on.
    assert function_props(template)["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": {"Ref": log_group_id},
    }
    assert template.to_json()["Outputs"]["LogGroupName"]["Value"] == {"Ref": log_group_id}
    assert props(custom, "AWS::Logs::LogGroup")["RetentionInDays"] == 7
    # No LogRetention custom resource (a Lambda of its own, a hang under moto).
    assert not template.find_resources("Custom::LogRetention")
    assert len(template.find_resources("AWS::Lambda::Function")) == 1


def test_async_invocations_retry_then_land_in_an_encrypted_queue(
    template: Template, custom: Template
) -> None:
    config = props(template, "AWS::Lambda::EventInvokeConfig")
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 21600
    queue_id, queue = only(template, "AWS::SQS::Queue")
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [queue_id, "Arn"]
    }
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert props(custom, "AWS::Lambda::EventInvokeConfig")["MaximumRetryAttempts"] == 0


def test_sweeper_schedule_sends_the_sweep_event(template: Template) -> None:
    rule = props(template, "AWS::Events::Rule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert json.loads(target["Input"]) == {"llamaws": {"kind": "sweep"}}
    assert target["Arn"]["Fn::GetAtt"][0].startswith("ApiFunction")
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com"},
    )


def test_function_url_checks_sigv4_only_for_iam_auth(template: Template, custom: Template) -> None:
    assert props(template, "AWS::Lambda::Url")["AuthType"] == "NONE"
    assert props(custom, "AWS::Lambda::Url")["AuthType"] == "AWS_IAM"
    assert function_props(custom)["Environment"]["Variables"]["LLAMAWS_AUTH"] == "iam"
    # No public invoke permission when Lambda checks the signature.
    assert not custom.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"FunctionUrlAuthType": "NONE"}}
    )


def test_function_url_streams_through_the_wrapper_unless_streaming_is_off(
    template: Template, custom: Template
) -> None:
    assert props(template, "AWS::Lambda::Url")["InvokeMode"] == "RESPONSE_STREAM"
    wrapper = function_props(template)["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    # The bundle lays llamaws/adapter/ out at the task root, the wrapper inside it.
    assert wrapper == f"/var/task/{_BUNDLED_WRAPPER}"
    assert props(custom, "AWS::Lambda::Url")["InvokeMode"] == "BUFFERED"
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in function_props(custom)["Environment"]["Variables"]


_BUNDLED_WRAPPER = "llamaws/adapter/lambda_runtime/exec_wrapper"


def test_the_bundle_ships_the_wrapper_as_an_executable() -> None:
    from llamaws.builder.lambda_bundle import _adapter_files

    files = dict(_adapter_files())
    assert _BUNDLED_WRAPPER in files
    assert os.access(files[_BUNDLED_WRAPPER], os.X_OK)


# -- edge -------------------------------------------------------------------------


def _behaviors(template: Template) -> dict[str, dict[str, Any]]:
    config = props(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    behaviors = {b["PathPattern"]: b for b in config.get("CacheBehaviors", [])}
    behaviors["*"] = config["DefaultCacheBehavior"]
    return behaviors


def _origins(template: Template) -> dict[str, dict[str, Any]]:
    config = props(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    return {origin["Id"]: origin for origin in config["Origins"]}


def test_ui_paths_go_to_the_private_bucket_through_oac_with_the_spa_function(
    template: Template,
) -> None:
    behaviors = _behaviors(template)
    origins = _origins(template)
    function_id, function = only(template, "AWS::CloudFront::Function")
    assert function["Properties"]["FunctionCode"] == cloudfront_function_code(
        "/deployments/ui-app/ui", ["index.html"]
    )
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    for pattern in ("/deployments/ui-app/ui", "/deployments/ui-app/ui/*"):
        behavior = behaviors[pattern]
        origin = origins[behavior["TargetOriginId"]]
        assert origin["DomainName"] == {"Fn::GetAtt": ["UiBucket", "RegionalDomainName"]}
        assert "OriginAccessControlId" in origin
        assert behavior["FunctionAssociations"] == [
            {
                "EventType": "viewer-request",
                "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]},
            }
        ]
        assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
        assert behavior["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"]
    oac = props(template, "AWS::CloudFront::OriginAccessControl")["OriginAccessControlConfig"]
    assert oac["OriginAccessControlOriginType"] == "s3" and oac["SigningBehavior"] == "always"
    _assert_tls_only(template, "UiBucket")
    # Only CloudFront (this distribution) may read the UI bucket.
    policy = template.find_resources(
        "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": "UiBucket"}}}
    )
    (statement,) = [
        s
        for s in next(iter(policy.values()))["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert "AWS:SourceArn" in statement["Condition"]["StringEquals"]


def test_api_paths_go_to_the_function_url_uncached_with_every_header_but_host(
    template: Template,
) -> None:
    behaviors = _behaviors(template)
    origins = _origins(template)
    caching_disabled = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    all_viewer_except_host = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    for pattern in ("/deployments/ui-app/*", "*"):
        behavior = behaviors[pattern]
        assert behavior["CachePolicyId"] == caching_disabled
        assert behavior["OriginRequestPolicyId"] == all_viewer_except_host
        assert behavior["ViewerProtocolPolicy"] == "https-only"
        assert set(behavior["AllowedMethods"]) == {
            "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"
        }  # fmt: skip
        origin = origins[behavior["TargetOriginId"]]
        assert origin["DomainName"]["Fn::Select"][1]["Fn::Split"][1]["Fn::GetAtt"][1] == (
            "FunctionUrl"
        )
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
        assert origin["CustomOriginConfig"]["OriginReadTimeout"] == 60
        assert "OriginAccessControlId" not in origin  # see docs/infra.md
    # The UI rules come before the API's catch-all under the same prefix.
    order = list(behaviors)
    assert order.index("/deployments/ui-app/ui/*") < order.index("/deployments/ui-app/*")


def test_event_streams_go_to_the_function_url_uncached_and_uncompressed(
    template: Template, custom: Template
) -> None:
    caching_disabled = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    for stack, base in ((template, "/deployments/ui-app"), (custom, "/deployments/hello")):
        behaviors = _behaviors(stack)
        events = behaviors[f"{base}/events/*"]
        assert events["CachePolicyId"] == caching_disabled
        assert events["Compress"] is False  # a compressing edge would hold events back
        assert events["TargetOriginId"] == behaviors[f"{base}/*"]["TargetOriginId"]
        assert "POST" in events["AllowedMethods"]  # answers to a run are posted there too
        order = list(behaviors)
        assert order.index(f"{base}/events/*") < order.index(f"{base}/*")


def test_viewers_need_tls_1_2_with_a_custom_domain(template: Template, custom: Template) -> None:
    config = props(custom, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert config["Aliases"] == ["agents.example.com"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert config["ViewerCertificate"]["SslSupportMethod"] == "sni-only"
    assert config["PriceClass"] == "PriceClass_All"
    assert "Logging" not in config
    default = props(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert default["HttpVersion"] == "http2and3" and default["PriceClass"] == "PriceClass_100"
    assert default["Logging"]["Prefix"] == "cloudfront/"


def test_a_headless_app_has_no_ui_bucket(custom: Template) -> None:
    custom.resource_count_is("AWS::CloudFront::Function", 0)
    assert "UiBucket" not in custom.to_json()["Resources"]
    assert set(_behaviors(custom)) == {"/deployments/hello/events/*", "/deployments/hello/*", "*"}


# -- IAM --------------------------------------------------------------------------


def _role_statements(template: Template) -> list[dict[str, Any]]:
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_function_role_reaches_only_this_stacks_resources(template: Template) -> None:
    role_id, role = only(template, "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in role["Properties"]
    for policy in template.find_resources("AWS::IAM::Policy").values():
        assert policy["Properties"]["Roles"] == [{"Ref": role_id}]
    statements = _role_statements(template)
    rendered = json.dumps(statements)
    assert '"*"' not in rendered and '":*"' not in rendered
    by_action = {action: s for s in statements for action in _actions(s)}
    assert by_action["dynamodb:Query"]["Resource"] == [
        {"Fn::GetAtt": ["RunsTable", "Arn"]},
        {"Fn::Join": ["", [{"Fn::GetAtt": ["RunsTable", "Arn"]}, "/index/GSI1"]]},
    ]
    assert by_action["s3:PutObject"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": ["SpillBucket", "Arn"]}, "/llamaws-spill/*"]]
    }
    assert by_action["lambda:InvokeFunction"]["Resource"]["Fn::GetAtt"][0].startswith("ApiFunction")
    assert by_action["logs:PutLogEvents"]["Resource"]["Fn::GetAtt"][0].startswith("ApiLogs")
    ssm = by_action["ssm:GetParametersByPath"]["Resource"]
    assert [part["Fn::Join"][1][-1] for part in ssm] == [
        ":parameter/llamaws/llamaws-ui-app/env",
        ":parameter/llamaws/llamaws-ui-app/env/*",
    ]
    assert set(by_action) == {
        *TABLE_ACTIONS, "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "lambda:InvokeFunction", "logs:CreateLogStream", "logs:PutLogEvents",
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        "ssm:GetParametersByPath",
    }  # fmt: skip


def test_secrets_manager_mode_reads_only_its_own_secret(custom: Template) -> None:
    secret = custom.to_json()["Resources"]["AppSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["SecretString"] == "{}"
    by_action = {a: s for s in _role_statements(custom) for a in _actions(s)}
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == {"Ref": "AppSecret"}
    assert "ssm:GetParametersByPath" not in by_action


def test_table_actions_cover_every_dynamodb_call_of_the_store() -> None:
    import boto3

    operations = boto3.client("dynamodb", region_name="us-east-1").meta.service_model
    snake = {
        re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(): name for name in operations.operation_names
    }
    used: set[str] = set()
    for path in (ROOT / "adapter").rglob("*.py"):
        text = path.read_text()
        used |= {snake[m] for m in re.findall(r"[\"'.]([a-z_]+)[\"'(]", text) if m in snake}
    local_only = {"CreateTable", "DescribeTable", "UpdateTimeToLive"}  # local engines only
    assert used - local_only, "found no DynamoDB call in adapter/"
    assert {f"dynamodb:{op}" for op in used - local_only} <= set(TABLE_ACTIONS)


# -- outputs and ids --------------------------------------------------------------


def test_outputs_name_what_deploy_and_operators_need(template: Template, custom: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert set(outputs) >= {
        "ApiUrl", "UiUrl", "FunctionUrl", "FunctionName", "TableName", "SpillBucketName",
        "UiBucketName", "UiPrefix", "DistributionId", "DistributionDomainName",
        "SecretsLocation", "FailedInvocationsQueueUrl", "AccessLogBucketName", "LogGroupName",
    }  # fmt: skip
    assert outputs["UiPrefix"]["Value"] == "deployments/ui-app/ui"  # ui publish's default
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][-1] == "/deployments/ui-app/"
    assert outputs["SecretsLocation"]["Value"] == "/llamaws/llamaws-ui-app/env"
    custom_outputs = custom.to_json()["Outputs"]
    assert custom_outputs["ApiUrl"]["Value"] == "https://agents.example.com/deployments/hello/"
    assert "UiUrl" not in custom_outputs


def test_stateful_resources_keep_their_logical_ids(
    template: Template, custom_stack: tuple[Any, LlamawsStack]
) -> None:
    resources = template.to_json()["Resources"]
    expected = {
        "RunsTable": "AWS::DynamoDB::Table",
        "SpillBucket": "AWS::S3::Bucket",
        "UiBucket": "AWS::S3::Bucket",
        "AccessLogBucket": "AWS::S3::Bucket",
    }
    assert {k: resources[k]["Type"] for k in expected} == expected
    assert custom_stack[1].stack_name == "llamaws-hello-dev"
    assert Template.from_stack(custom_stack[1]).to_json()["Resources"]["AppSecret"]


# -- checks -----------------------------------------------------------------------


def test_cdk_nag_finds_nothing_unacknowledged_and_each_acknowledgement_has_a_reason(
    ui_stack: tuple[Any, LlamawsStack], custom_stack: tuple[Any, LlamawsStack]
) -> None:
    for app, _ in (ui_stack, custom_stack):
        assert nag_findings(app) == []
        acknowledged = acknowledgements(app)
        assert acknowledged
        for ack in acknowledged:
            assert len(ack.reason.split()) >= 5, ack
    rules = {a.rule for a in acknowledgements(ui_stack[0])}
    assert "AwsSolutions-CFR2" in rules  # WAF: a fixed monthly price


def test_cdk_nag_reports_an_unacknowledged_wildcard(build: Build, work: Path) -> None:
    app_dir = work / "wildcard"
    shutil.copytree(EXAMPLES / "hello", app_dir, ignore=shutil.ignore_patterns(".llamaws"))
    (app_dir / "src" / "too_broad.py").write_text(
        textwrap.dedent(
            """
            from aws_cdk import aws_iam as iam

            def grant_everything(stack):
                stack.api.role.add_to_principal_policy(
                    iam.PolicyStatement(actions=["s3:*"], resources=["*"])
                )
            """
        )
    )
    app, _ = build(app_dir, stack_customizers="too_broad:grant_everything")
    rules = {finding.rule for finding in nag_findings(app)}
    assert {"AwsSolutions-IAM5[Action::s3:*]", "AwsSolutions-IAM5[Resource::*]"} <= rules


def test_stack_customizers_receive_the_built_stack(build: Build, app_with_env: Path) -> None:
    _, stack = build(app_with_env, stack_customizers="stack_tweaks:tag")
    table = Template.from_stack(stack).to_json()["Resources"]["RunsTable"]
    assert {"Key": "team", "Value": "agents"} in table["Properties"]["Tags"]
    assert isinstance(stack.api.role, iam.Role)


def test_stack_customizer_that_cannot_be_imported_is_one_line(build: Build) -> None:
    from llamaws.adapter.errors import ConfigError

    with pytest.raises(ConfigError, match="stack customizer 'nowhere:f': cannot import"):
        build(EXAMPLES / "hello", stack_customizers="nowhere:f")


def test_cfn_lint_is_clean_but_for_cdk_noise(
    ui_stack: tuple[Any, LlamawsStack], custom_stack: tuple[Any, LlamawsStack], work: Path
) -> None:
    for name, (_, stack) in {"ui": ui_stack, "custom": custom_stack}.items():
        template = work / f"{name}.template.json"
        template.write_text(json.dumps(Template.from_stack(stack).to_json(), indent=1))
        assert lint_template(template) == [], name
    assert set(CDK_NOISE) == {"W3005"}


def test_env_file_values_appear_nowhere_in_the_assembly(build: Build, app_with_env: Path) -> None:
    for secrets in ("ssm", "secretsmanager"):
        app, _ = build(app_with_env, secrets=secrets)
        assembly = app.synth()
        text = "".join(
            p.read_text(errors="replace")
            for p in Path(assembly.directory).rglob("*")
            if p.is_file() and p.suffix == ".json"
        )
        assert SECRET_VALUE not in text and "hello-from-env" not in text
        assert "OPENAI_API_KEY" not in text


# -- idle cost --------------------------------------------------------------------

PRICING = "aws.amazon.com/{}/pricing"
FIXED_MONTHLY_PRICES: dict[str, tuple[str, str]] = {
    # type: (what it costs while idle, source)
    "AWS::EC2::NatGateway": ("~$32/month per gateway", PRICING.format("vpc")),
    "AWS::EC2::Instance": ("per hour while running", PRICING.format("ec2")),
    "AWS::EC2::VPCEndpoint": ("~$7/month per interface endpoint", PRICING.format("privatelink")),
    "AWS::KMS::Key": ("$1/month per customer managed key", PRICING.format("kms")),
    "AWS::SecretsManager::Secret": ("$0.40/month per secret", PRICING.format("secrets-manager")),
    "AWS::CloudWatch::Alarm": ("$0.10/month per alarm metric", PRICING.format("cloudwatch")),
    "AWS::CloudWatch::Dashboard": ("$3/month per dashboard", PRICING.format("cloudwatch")),
    "AWS::WAFv2::WebACL": ("$5/month per web ACL", PRICING.format("waf")),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": (
        "~$16/month", PRICING.format("elasticloadbalancing")
    ),
    "AWS::RDS::DBInstance": ("per hour while running", PRICING.format("rds")),
    "AWS::ElastiCache::CacheCluster": ("per hour while running", PRICING.format("elasticache")),
    "AWS::Route53::HostedZone": ("$0.50/month per zone", PRICING.format("route53")),
}  # fmt: skip
FIXED_PRICE_PROPERTIES: dict[tuple[str, str], str] = {
    # (type, property): why it has a fixed price
    ("AWS::Lambda::Alias", "ProvisionedConcurrencyConfig"): "provisioned concurrency, per hour",
    ("AWS::Lambda::Version", "ProvisionedConcurrencyConfig"): "provisioned concurrency, per hour",
    ("AWS::DynamoDB::Table", "ProvisionedThroughput"): "provisioned capacity, per hour",
    ("AWS::DynamoDB::Table", "SSESpecification.KMSMasterKeyId"): "a customer managed key, $1/month",
    ("AWS::SQS::Queue", "KmsMasterKeyId"): "a customer managed key, $1/month",
    ("AWS::Logs::LogGroup", "KmsKeyId"): "a customer managed key, $1/month",
}
_FREE_TYPES_SEEN = {
    "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::IAM::Role",
    "AWS::IAM::Policy", "AWS::Logs::LogGroup", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy",
    "AWS::Lambda::Function", "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::Url",
    "AWS::Lambda::Permission", "AWS::Events::Rule", "AWS::CloudFront::Function",
    "AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::Distribution",
}  # fmt: skip


def fixed_prices(template: Mapping[str, Any]) -> list[str]:
    """Every resource (or property) of ``template`` that costs money while idle."""
    found = []
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind in FIXED_MONTHLY_PRICES:
            found.append(f"{logical_id} ({kind}): {FIXED_MONTHLY_PRICES[kind][0]}")
        for (price_kind, path), why in FIXED_PRICE_PROPERTIES.items():
            value: Any = resource.get("Properties", {})
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if kind == price_kind and value is not None:
                found.append(f"{logical_id} ({kind}.{path}): {why}")
        if kind == "AWS::Lambda::Function" and resource["Properties"].get("VpcConfig"):
            found.append(f"{logical_id}: a VPC function needs NAT or endpoints to reach AWS")
    return found


def test_an_idle_deployment_costs_nothing(template: Template) -> None:
    resources = template.to_json()
    assert fixed_prices(resources) == []
    # Every type in the stack was looked at: a new one must be added to a table above.
    assert {r["Type"] for r in resources["Resources"].values()} <= _FREE_TYPES_SEEN


def test_the_idle_cost_check_catches_an_opt_in_price(custom: Template) -> None:
    assert fixed_prices(custom.to_json()) == [
        "AppSecret (AWS::SecretsManager::Secret): $0.40/month per secret"
    ]


# -- determinism ------------------------------------------------------------------


def test_two_synths_of_the_same_input_are_byte_identical(app_with_env: Path, work: Path) -> None:
    digests = []
    for attempt in ("a", "b"):
        deployment = resolve_deployment(app_with_env)
        settings = resolve_settings(deployment)
        code = work / "code.zip"
        inputs = StackInputs(
            settings,
            code,
            cloudfront_function_code(f"{settings.base_path}/ui", ["index.html"]),
            tuple(deployment.python_paths),
        )
        app, stack = build_app(inputs, outdir=work / f"synth-{attempt}")
        synthesis = synthesize(app, stack)
        digests.append(
            {
                p.relative_to(synthesis.outdir).as_posix(): p.read_bytes()
                for p in sorted(synthesis.outdir.rglob("*"))
                if p.is_file()
            }
        )
    assert digests[0] == digests[1]
    assert any(name.startswith("asset.") and name.endswith(".zip") for name in digests[0])


# -- the CLI and cdk.json ---------------------------------------------------------


@pytest.fixture(scope="module")
def hello_copy(work: Path) -> Path:
    app = work / "hello-cli"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns(".llamaws", "cdk.out"))
    return app


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    return env


def test_llamaws_synth_strict_is_green_offline(hello_copy: Path) -> None:
    done = subprocess.run(
        ["uv", "run", "--no-sync", "llamaws", "synth", str(hello_copy), "--strict"],
        cwd=ROOT, capture_output=True, text=True, env=_cli_env(), timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cdk-nag AwsSolutions: 0 unacknowledged finding(s)" in done.stdout
    assert "cfn-lint: 0 error(s)" in done.stdout
    template = hello_copy / "cdk.out" / "llamaws-hello.template.json"
    assert json.loads(template.read_text())["Resources"]["RunsTable"]


def test_npx_cdk_synth_runs_through_cdk_json(hello_copy: Path, work: Path) -> None:
    if not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.skip("the CDK CLI is not installed: npm ci at the repo root (.ci/install-cdk.sh)")
    out = work / "npx-cdk.out"
    done = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "-c", f"app_dir={hello_copy}",
         "-c", "stage=ci", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=_cli_env(), timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    template = json.loads((out / "llamaws-hello-ci.template.json").read_text())
    assert template["Resources"]["RunsTable"]["Type"] == "AWS::DynamoDB::Table"


def test_synth_without_the_cdk_libraries_says_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from llamaws.cli import stack_inputs as prepare
    from llamaws.cli.main import app

    monkeypatch.setattr(prepare, "CDK_MODULES", ("aws_cdk_not_installed_here",))
    result = CliRunner().invoke(app, ["synth", str(EXAMPLES / "hello")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "Error: the CDK libraries are not installed (aws_cdk_not_installed_here). Install them "
        "with `pip install 'llamaws[cdk]'` (or `uv sync --extra cdk` in a checkout)."
    ]


def test_nag_findings_are_remembered_per_assembly(
    build: Build, app_with_env: Path, work: Path
) -> None:
    from llamaws.cli.synth import _nag_findings

    app_dir = work / "wildcard-cache"
    shutil.copytree(EXAMPLES / "hello", app_dir, ignore=shutil.ignore_patterns(".llamaws"))
    (app_dir / "src" / "broad.py").write_text(
        "from aws_cdk import aws_iam as iam\n\n"
        "def grant(stack):\n"
        "    stack.api.role.add_to_principal_policy(\n"
        "        iam.PolicyStatement(actions=['s3:GetObject'], resources=['*']))\n"
    )
    app, stack = build(app_dir, stack_customizers="broad:grant")
    app_out = app.synth()
    from llamaws.infra.app import Synthesis

    synthesis = Synthesis(
        Path(app_out.directory),
        stack.stack_name,
        Path(app_out.directory) / f"{stack.artifact_id}.template.json",
        Path(app_out.directory) / f"{stack.artifact_id}.metadata.json",
    )
    cache = work / "nag-cache"
    first = _nag_findings(app, synthesis, cache)
    assert [f.rule for f in first] == ["AwsSolutions-IAM5[Resource::*]"]
    # The same assembly: cdk-nag does not run again (no app to check).
    assert _nag_findings(None, synthesis, cache) == first  # type: ignore[arg-type]
    # Another acknowledgement changes the metadata, hence the key.
    synthesis.metadata.write_text(synthesis.metadata.read_text().replace("forever", "ever"))
    with pytest.raises(RuntimeError, match="Unable to deserialize"):  # cdk-nag runs on None
        _nag_findings(None, synthesis, cache)  # type: ignore[arg-type]
