"""The deployment's stack: it wires the constructs, states the outputs, applies customizers.

Everything it needs arrives as :class:`StackInputs` values (settings, the bundle,
the UI rewrite function's code): it reads no environment and imports nothing of
``builder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import CfnOutput, IStackSynthesizer, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from llamaws.adapter.store.table import GSI1

from .access_logs import AccessLogs
from .customizers import apply_customizers
from .edge import Edge
from .function import ApiFunction
from .nag import acknowledge
from .secrets import AppSecrets
from .settings import Settings
from .state import SPILL_BUCKET_ID, SPILL_PREFIX, State

__all__ = ["TABLE_ACTIONS", "LlamawsStack", "StackInputs"]

TABLE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
"""What the store does with its table (a test compares this with the store's calls)."""
SPILL_ACTIONS = ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")


@dataclass(frozen=True)
class StackInputs:
    """What the stack is built from (the CLI resolves and builds these)."""

    settings: Settings
    code: Path
    """The Lambda bundle: a deterministic zip (or a directory)."""
    ui_function_code: str | None = None
    """The SPA-fallback CloudFront Function (None: the app has no UI)."""
    app_paths: Sequence[Path] = field(default_factory=tuple)
    """Where the app's own modules are (stack customizers are imported from there)."""


class LlamawsStack(Stack):
    """One deployment: state, function, secrets, edge and their outputs."""

    def __init__(
        self,
        scope: Construct,
        inputs: StackInputs,
        *,
        synthesizer: IStackSynthesizer | None = None,
    ) -> None:
        settings = inputs.settings
        super().__init__(
            scope,
            settings.resolved_stack_name,
            stack_name=settings.resolved_stack_name,
            description=f"llamaws deployment {settings.deployment}",
            analytics_reporting=False,
            synthesizer=synthesizer,
        )
        self.settings = settings
        self.access_logs = (
            AccessLogs(self, "AccessLogs", settings=settings) if (settings.access_logs) else None
        )
        log_bucket = self.access_logs.bucket if self.access_logs is not None else None
        self.state = State(self, "State", settings=settings, log_bucket=log_bucket)
        self.secrets = AppSecrets(self, "Secrets", settings=settings)
        environment = {
            "LLAMAWS_AUTH": settings.auth,
            "LLAMAWS_TABLE": self.state.table.table_name,
            "LLAMAWS_S3_BUCKET": self.state.spill_bucket.bucket_name,
            **self.secrets.environment,
        }
        self.api = ApiFunction(
            self, "Api", settings=settings, code=inputs.code, environment=environment
        )
        self._grant_state(self.api.role)
        self.secrets.grant_read(self.api.role)
        self.edge = Edge(
            self,
            "Edge",
            settings=settings,
            function_url=self.api.url,
            ui_function_code=inputs.ui_function_code,
            log_bucket=log_bucket,
        )
        self._outputs()
        apply_customizers(self, settings.stack_customizers, inputs.app_paths)

    def _grant_state(self, role: iam.IRole) -> None:
        table = self.state.table
        policy = iam.Policy(
            self.api,
            "StatePolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=list(TABLE_ACTIONS),
                    resources=[table.table_arn, f"{table.table_arn}/index/{GSI1}"],
                ),
                iam.PolicyStatement(
                    actions=list(SPILL_ACTIONS),
                    resources=[self.state.spill_bucket.arn_for_objects(f"{SPILL_PREFIX}*")],
                ),
            ],
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{SPILL_BUCKET_ID}.Arn>/{SPILL_PREFIX}*]",
            "Spilled payloads get fresh keys under the spill prefix of this stack's bucket.",
        )
        self.state_policy = policy

    def _outputs(self) -> None:
        settings = self.settings
        edge = self.edge
        host = settings.domain_name or edge.distribution.distribution_domain_name
        outputs: dict[str, tuple[str, str]] = {
            "ApiUrl": (f"https://{host}{settings.base_path}/", "The deployment's API"),
            "FunctionUrl": (self.api.url.url, "The function's own URL (behind CloudFront)"),
            "FunctionName": (self.api.function.function_name, "The API function"),
            "TableName": (self.state.table.table_name, "Runs, events, ticks, leases"),
            "SpillBucketName": (self.state.spill_bucket.bucket_name, "Payloads over 400 KB"),
            "DistributionId": (edge.distribution.distribution_id, "CloudFront distribution"),
            "DistributionDomainName": (
                edge.distribution.distribution_domain_name,
                "CloudFront domain",
            ),
            "SecretsLocation": (
                self.secrets.location,
                "Where the app's env-file values are read from (SSM path or secret ARN)",
            ),
            "FailedInvocationsQueueUrl": (
                self.api.dead_letters.queue_url,
                "Asynchronous invocations that failed after their retries",
            ),
        }
        if edge.ui_bucket is not None:
            outputs["UiUrl"] = (f"https://{host}{settings.base_path}/ui/", "The deployment's UI")
            outputs["UiBucketName"] = (edge.ui_bucket.bucket_name, "The built UI's bucket")
            outputs["UiPrefix"] = (
                f"{settings.base_path.lstrip('/')}/ui",
                "Key prefix of the UI's objects (llamaws ui publish --prefix)",
            )
        if self.access_logs is not None:
            outputs["AccessLogBucketName"] = (self.access_logs.bucket.bucket_name, "Access logs")
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
