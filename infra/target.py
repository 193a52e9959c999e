"""Where a deployment lives: AWS (an account and region) or a local engine at an endpoint.

A local engine (moto server) is chosen with ``--endpoint-url`` or the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_CLOUDFORMATION`` variables; boto3 and the CDK
CLI honour every ``AWS_ENDPOINT_URL_<SERVICE>`` themselves. Against a local engine a
deploy uses CloudFormation directly (no change sets) and a template without the CDK's
bootstrap-version rule, which local engines cannot evaluate (``docs/deploy.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llamaws.adapter.errors import LlamawsError

from .deploy_errors import CredentialsMissing

__all__ = ["AwsTarget", "Identity"]

LOCAL_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class Identity:
    """Who the credentials are, and in which account."""

    account: str
    arn: str


@dataclass(frozen=True)
class AwsTarget:
    """An AWS region, or a local engine (``local``) reached at ``endpoint_url``."""

    region: str
    endpoint_url: str | None = None
    """``--endpoint-url``: every service at this URL (None: AWS, or the env variables)."""
    local: bool = False
    region_given: bool = False
    """The region came from ``--region`` (commands we suggest repeat it)."""

    @classmethod
    def resolve(
        cls,
        endpoint_url: str | None = None,
        region: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AwsTarget:
        """The target of a command's ``--endpoint-url`` / ``--region`` and the environment."""
        import boto3

        env = os.environ if environ is None else environ
        local = bool(endpoint_url) or any(env.get(name) for name in LOCAL_ENDPOINT_VARIABLES)
        chosen = region or boto3.session.Session().region_name or ("us-east-1" if local else None)
        if not chosen:
            raise CredentialsMissing(
                "no AWS region is configured",
                hint="Pass --region, or set AWS_REGION (or a region in your AWS profile).",
            )
        return cls(chosen, endpoint_url or None, local, region_given=bool(region))

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` for this target (standard retries)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)
        return boto3.client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )

    def identity(self) -> Identity:
        """The caller, from STS; one-line errors for missing or refused credentials."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            answer = self.client("sts").get_caller_identity()
        except (NoCredentialsError, PartialCredentialsError):
            raise CredentialsMissing(
                "no AWS credentials found",
                hint="Configure them (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY); a local engine accepts any values.",
            ) from None
        except EndpointConnectionError as exc:
            raise LlamawsError(
                f"cannot reach AWS STS: {exc}",
                hint="Check the network, the region and --endpoint-url.",
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise CredentialsMissing(
                f"the AWS credentials were refused ({code})",
                hint="Refresh them (aws sso login, or new keys) and try again.",
            ) from None
        except BotoCoreError as exc:
            raise CredentialsMissing(f"cannot use the AWS credentials: {exc}") from None
        return Identity(account=str(answer["Account"]), arn=str(answer["Arn"]))

    def where(self, identity: Identity | None = None) -> str:
        """``aws://ACCOUNT/REGION`` (and the endpoint of a local engine)."""
        account = identity.account if identity is not None else "ACCOUNT"
        place = f"aws://{account}/{self.region}"
        endpoint = self.endpoint_url or _environment_endpoint(os.environ)
        return f"{place} at {endpoint}" if self.local and endpoint else place

    def flags(self) -> str:
        """The options that select this target again (for the commands we suggest)."""
        endpoint = f" --endpoint-url {self.endpoint_url}" if self.endpoint_url else ""
        return endpoint + (f" --region {self.region}" if self.region_given else "")

    def cli_environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The CDK CLI's environment: the region, and a local engine's endpoints."""
        env = dict(environ)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.local:
            # The CLI hands CloudFormation an S3 URL of the template; with an IP address
            # as host, a local engine would read the first label as the bucket.
            s3 = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
            if s3 and "AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION" not in env:
                env["AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION"] = _named_host(s3)
            env.setdefault("CDK_DISABLE_VERSION_CHECK", "1")
            env.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
        return env


def _environment_endpoint(environ: Mapping[str, str]) -> str | None:
    for name in LOCAL_ENDPOINT_VARIABLES:
        if environ.get(name):
            return environ[name]
    return None


def _named_host(url: str) -> str:
    """``http://127.0.0.1:5000`` → ``http://localhost:5000``."""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "::1"):
        netloc = "localhost" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
