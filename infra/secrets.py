"""Config and secrets: where the app's env-file values live, and who may read them.

The values never enter the template (nor the bundle): ``llamaws deploy`` writes
them, and the function reads them at its cold start (``adapter/secrets.py``):

- ``ssm`` (default): one SSM Parameter Store ``SecureString`` per variable under
  :attr:`Settings.parameter_path` (standard parameters with the AWS-managed key:
  nothing to pay at rest). CloudFormation cannot create ``SecureString``
  parameters, so the stack only grants read access to the path.
- ``secretsmanager``: one secret holding a JSON object of all variables
  (``$0.40`` a month, the one opt-in fixed price); created empty (``{}``).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .nag import acknowledge
from .settings import Settings

__all__ = ["SECRET_ID", "AppSecrets"]

SECRET_ID = "AppSecret"
"""Pinned logical id of the Secrets Manager secret (when ``secrets = "secretsmanager"``)."""


class AppSecrets(Construct):
    """The place the app's env-file values are read from, as function environment."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.secret: secretsmanager.Secret | None = None
        self.environment: dict[str, str]
        if settings.secrets == "secretsmanager":
            self.secret = secretsmanager.Secret(
                self,
                "Secret",
                description=f"Env-file values of llamaws deployment {settings.deployment}",
                secret_string_value=SecretValue.unsafe_plain_text("{}"),  # no value, no secret
                removal_policy=RemovalPolicy.RETAIN
                if settings.retain_on_delete
                else RemovalPolicy.DESTROY,
            )
            resource = self.secret.node.default_child
            assert isinstance(resource, secretsmanager.CfnSecret)
            resource.override_logical_id(SECRET_ID)
            acknowledge(
                self.secret,
                "AwsSolutions-SMG4",
                "The values are the app's own env-file settings, pushed by `llamaws deploy`; "
                "there is no rotation function for them.",
            )
            self.environment = {"LLAMAWS_SECRET_ARN": self.secret.secret_arn}
        else:
            self.environment = {"LLAMAWS_SSM_PATH": settings.parameter_path}

    @property
    def location(self) -> str:
        """The SSM path or the secret's ARN (a stack output for ``llamaws deploy``)."""
        if self.secret is not None:
            return self.secret.secret_arn
        return self.settings.parameter_path

    def grant_read(self, role: iam.IRole) -> iam.Policy:
        """Let ``role`` read the values (and nothing else), as a policy of its own."""
        policy = iam.Policy(self, "ReadPolicy", roles=[role])
        if self.secret is not None:
            policy.add_statements(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[self.secret.secret_arn],
                )
            )
            return policy
        path = self.settings.parameter_path
        parameter = Stack.of(self).format_arn(
            service="ssm",
            resource="parameter",
            resource_name=path.lstrip("/"),
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        policy.add_statements(
            iam.PolicyStatement(
                actions=["ssm:GetParametersByPath"],
                resources=[parameter, f"{parameter}/*"],
            )
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:"
            f"<AWS::AccountId>:parameter{path}/*]",
            "The app's env-file variables are parameters under this deployment's own path; "
            "their names are the app's and change with it.",
        )
        return policy
