"""Stack settings: ``[tool.llamaws]`` of the app's config, then flags, resolved purely.

:func:`resolve_settings` reads files and returns a :class:`Settings` value; it
imports no CDK, touches no environment and creates nothing, so the CLI can
check settings in milliseconds and the constructs receive plain values
(``docs/infra.md`` lists every key with its default).

Where ``[tool.llamaws]`` is read: the deployment's TOML config file when it has
that table (``llama_deploy.toml`` / ``llama_agents.toml``), else the app's
``pyproject.toml``. Overrides (CLI flags, ``cdk -c key=value`` context) win over
the file; strings from a command line are converted to the field's type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llamaws.adapter.config import DEFAULT_AUTH, AuthMode, Deployment, read_settings_table
from llamaws.adapter.errors import ConfigError

__all__ = [
    "LOG_RETENTION_DAYS",
    "SETTINGS_TABLE",
    "Settings",
    "read_settings_table",
    "resolve_settings",
]

SETTINGS_TABLE = "tool.llamaws"

_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_STAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
_IMPORT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                       2192, 2557, 2922, 3288, 3653)  # fmt: skip
"""The values CloudWatch Logs accepts for a log group's retention."""


class Settings(BaseModel):
    """How a deployment's stack is built (``[tool.llamaws]``, flags override)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str
    """The deployment name (from the llamadeploy config, not from ``[tool.llamaws]``)."""
    stage: str | None = None
    """A suffix for the stack name (``llamaws-<name>-<stage>``): one stack per stage."""
    stack_name: str | None = None
    """The CloudFormation stack name; default ``llamaws-<deployment>[-<stage>]``."""

    # -- function
    auth: AuthMode = DEFAULT_AUTH
    """How the API authenticates callers (``docs/auth.md``): ``key``, ``iam`` (the
    function URL checks SigV4) or ``none``; the function gets it as ``LLAMAWS_AUTH``."""
    architecture: Literal["arm64", "x86_64"] = "arm64"
    python: Literal["3.12", "3.13"] = "3.12"
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    timeout_seconds: int = Field(default=300, ge=10, le=900)
    reserved_concurrency: int | None = Field(default=None, ge=1)
    """None: the function draws on the account's unreserved concurrency."""
    log_retention_days: int = 30
    async_retries: int = Field(default=2, ge=0, le=2)
    async_max_event_age_seconds: int = Field(default=21600, ge=60, le=21600)
    sweep_minutes: int = Field(default=5, ge=0, le=1440)
    """Minutes between sweep invocations (0: no schedule); also how soon a wait token
    past its deadline times out when nobody touches it (``docs/waits.md``)."""
    wait_timeout_seconds: float | None = Field(default=None, gt=0)
    wait_heartbeat_seconds: float | None = Field(default=None, gt=0)
    """Default deadlines of waits (read by the function from the app's config)."""
    streaming: bool = True
    """Response streaming: the function URL in ``RESPONSE_STREAM`` mode and the streaming
    runtime loop (live event streams); false: ``BUFFERED`` and the long-poll (e.g. for a
    function in a VPC, whose URL cannot stream)."""

    # -- state
    point_in_time_recovery: bool = True
    deletion_protection: bool = True
    retain_on_delete: bool = True
    """Keep the table and the buckets when the stack is deleted."""
    spill_expiration_days: int = Field(default=45, ge=1)
    """Spilled payloads are deleted this long after they were written: past the
    store's TTL horizon (30 days of run age + 7 days of retention)."""

    # -- config and secrets
    secrets: Literal["ssm", "secretsmanager"] = "ssm"
    """Where the app's env-file values live: SSM Parameter Store ``SecureString``
    (no monthly fee) or one Secrets Manager secret ($0.40 a month)."""

    # -- edge
    price_class: Literal["100", "200", "All"] = "100"
    domain_name: str | None = None
    certificate_arn: str | None = None
    """An ACM certificate in us-east-1 for ``domain_name``; with it, viewers need TLS 1.2+."""
    access_logs: bool = True
    """S3 server access logs and CloudFront standard logs into a log bucket."""
    access_log_expiration_days: int = Field(default=90, ge=1)

    # -- customisation
    stack_customizers: tuple[str, ...] = ()
    """``module:function`` callables that receive the stack after it is built."""

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not _STAGE_RE.match(value):
            raise ValueError(f"{value!r}: use up to 32 letters, digits and '-'")
        return value

    @field_validator("stack_name")
    @classmethod
    def _stack_name(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not _STACK_NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a CloudFormation stack name")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"{value} is not one of CloudWatch's retention periods (1, 3, 5, 7, "
                             "14, 30, 60, 90, 120, 150, 180, 365, … days)")  # fmt: skip
        return value

    @field_validator("stack_customizers")
    @classmethod
    def _customizers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for target in value:
            if not _IMPORT_RE.match(target):
                raise ValueError(f"{target!r} is not of the form 'module:function'")
        return value

    @property
    def resolved_stack_name(self) -> str:
        """``stack_name``, else ``llamaws-<deployment>[-<stage>]`` (unsafe characters: ``-``)."""
        if self.stack_name:
            return self.stack_name
        base = re.sub(r"[^A-Za-z0-9-]+", "-", f"llamaws-{self.deployment}").strip("-")
        name = f"{base}-{self.stage}" if self.stage else base
        return name[:128]

    @property
    def base_path(self) -> str:
        """The deployment's URL prefix: ``/deployments/<name>``."""
        return f"/deployments/{self.deployment}"

    @property
    def parameter_path(self) -> str:
        """SSM path under which the app's env-file values are kept (one parameter each)."""
        return f"/llamaws/{self.resolved_stack_name}/env"


def resolve_settings(
    deployment: Deployment, overrides: Mapping[str, object] | None = None
) -> Settings:
    """The stack settings of ``deployment``: ``[tool.llamaws]``, then ``overrides``.

    ``overrides`` with a ``None`` value are ignored (a flag that was not given).
    """
    table, source = read_settings_table(deployment)
    if "deployment" in table:
        raise ConfigError(
            f"{source}: [{SETTINGS_TABLE}] field 'deployment' is not a setting",
            hint="The deployment name comes from the llamadeploy config ('name').",
        )
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values = {**table, **given, "deployment": deployment.name}
    if isinstance(values.get("stack_customizers"), str):
        values["stack_customizers"] = [
            part.strip() for part in str(values["stack_customizers"]).split(",") if part.strip()
        ]
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        origin = "flag or context" if field.split(".")[0] in given else str(source)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown setting (see docs/infra.md for the [{SETTINGS_TABLE}] keys)"
        raise ConfigError(f"{origin}: [{SETTINGS_TABLE}] field '{field}': {message}") from exc
