"""Function: the Lambda function that serves the API and drives runs.

Python runtime (arm64 by default) running ``llamaws.adapter.handler.handler``
from the bundle; the environment contract of ``docs/lambda.md``; an explicit log
group with retention (no ``LogRetention`` custom resource), JSON log lines; asynchronous
invocations (``continue`` hand-offs) with retries and an SQS queue for the ones
that failed for good; the sweeper schedule; a Function URL for the edge.

With ``streaming`` (the default) the URL's invoke mode is ``RESPONSE_STREAM`` and
``AWS_LAMBDA_EXEC_WRAPPER`` makes the managed runtime start llamaws's streaming runtime
loop instead of ``awslambdaric`` (``docs/lambda.md``, "Event streams").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .nag import acknowledge
from .settings import LOG_RETENTION_DAYS, Settings

__all__ = ["EXEC_WRAPPER", "HANDLER", "SWEEP_EVENT", "ApiFunction"]

HANDLER = "llamaws.adapter.handler.handler"
EXEC_WRAPPER = "/var/task/llamaws/adapter/lambda_runtime/exec_wrapper"
"""Where the bundle puts the streaming loop's wrapper (the task root is ``/var/task``)."""
SWEEP_EVENT = {"llamaws": {"kind": "sweep"}}

_RUNTIMES = {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}
_RETENTION = dict(
    zip(
        LOG_RETENTION_DAYS,
        [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE],
        strict=True,
    )
)
"""Days → CloudWatch Logs retention (the members are listed in increasing order)."""
_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ApiFunction(Construct):
    """The function, its role, log group, async-invoke config, schedule and URL."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        code: Path,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=_RETENTION[settings.log_retention_days],
            removal_policy=RemovalPolicy.DESTROY,  # logs expire anyway; state is kept elsewhere
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"llamaws deployment {settings.deployment}: the API function",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.dead_letters = sqs.Queue(
            self,
            "FailedInvocations",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the on-failure destination of asynchronous invocations.",
        )
        variables = dict(environment)
        if settings.streaming:
            variables["AWS_LAMBDA_EXEC_WRAPPER"] = EXEC_WRAPPER
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=_RUNTIMES[settings.python],
            architecture=_ARCHITECTURES[settings.architecture],
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code)),
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=dict(sorted(variables.items())),
            role=self.role,
            log_group=self.log_group,
            # JSON lines: the runtime adds a record's extra fields (the adapter's
            # handler_id / run_id, adapter/log_context.py), so `llamaws logs` can filter.
            logging_format=lambda_.LoggingFormat.JSON,
            description=f"llamaws deployment {settings.deployment}",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"python = {settings.python!r} in [tool.llamaws]: the bundle's wheels and bytecode "
            "are built for this version.",
        )
        self.function.configure_async_invoke(
            retry_attempts=settings.async_retries,
            max_event_age=Duration.seconds(settings.async_max_event_age_seconds),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        # The function hands runs on to itself (InvocationType=Event). A policy of
        # its own: the role's default policy would make the function depend on it.
        self.self_invoke = iam.Policy(
            self,
            "SelfInvoke",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
                )
            ],
        )
        # key / none: the function's own gate checks callers; iam: Lambda checks SigV4
        # before the function runs (callers sign for the URL's host, not CloudFront's).
        self.url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.AWS_IAM
            if settings.auth == "iam"
            else lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM
            if settings.streaming
            else lambda_.InvokeMode.BUFFERED,
        )
        self.schedule: events.Rule | None = None
        if settings.sweep_minutes:
            self.schedule = events.Rule(
                self,
                "Sweep",
                description="llamaws: resume runs whose driver died",
                schedule=events.Schedule.rate(Duration.minutes(settings.sweep_minutes)),
                targets=[
                    targets.LambdaFunction(
                        self.function,
                        event=events.RuleTargetInput.from_object(SWEEP_EVENT),
                        retry_attempts=0,  # the next sweep comes soon enough
                    )
                ],
            )
