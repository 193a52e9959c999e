"""The app's env-file values in the cloud: pushed to the store the stack reads, listed
without ever showing a value in full.

The store is the ``secrets`` setting's (see ``infra/secrets.py``): one SSM Parameter
Store ``SecureString`` per variable under ``/llamaws/<stack>/env`` (default), or one
Secrets Manager secret holding a JSON object (the stack creates it: deploy first).
Only the env files' values are pushed: the config's ``env`` table travels in the
bundle with the config, and is not secret. A push makes the store equal to the files:
new and changed values are written, values no file has any more are deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import ConfigError, LlamawsError

from .deploy_errors import StackMissing
from .target import AwsTarget

__all__ = [
    "PushResult",
    "SecretStore",
    "StoredValue",
    "env_file_values",
    "masked",
    "push_values",
    "read_values",
    "secret_store",
]

SSM_VALUE_LIMIT = 4096
"""Characters in a standard SSM parameter's value."""
_DELETE_BATCH = 10


@dataclass(frozen=True)
class SecretStore:
    """Where a deployment's env-file values live."""

    kind: Literal["ssm", "secretsmanager"]
    location: str
    """The SSM path, or the secret's ARN."""

    def describe(self) -> str:
        if self.kind == "ssm":
            return f"SSM Parameter Store {self.location}"
        return f"Secrets Manager secret {self.location}"


@dataclass(frozen=True)
class StoredValue:
    """A value in the store (``value`` never appears in a repr)."""

    name: str
    value: str = field(repr=False)
    version: int | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class PushResult:
    """Names only: what a push wrote, deleted, and left as it was."""

    store: SecretStore
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        total = len(self.added) + len(self.changed) + len(self.unchanged)
        parts = [f"{total} value(s) in {self.store.describe()}"]
        detail = [
            f"{len(names)} {label}"
            for names, label in (
                (self.added, "new"),
                (self.changed, "changed"),
                (self.removed, "removed"),
            )
            if names
        ]
        parts.append(f"({', '.join(detail)})" if detail else "(unchanged)")
        return " ".join(parts)


def env_file_values(deployment: Deployment) -> dict[str, str]:
    """The values of the deployment's env files, in order (later files win; empty
    values are skipped, as locally)."""
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    for env_file in deployment.config.env_files:
        path = deployment.config_dir / env_file
        if not path.is_file():
            raise ConfigError(
                f"env file {env_file} of deployment '{deployment.name}' does not exist",
                hint=f"Create {path}, or remove it from env_files.",
            )
        values.update({k: v for k, v in dotenv_values(path).items() if isinstance(v, str)})
    return {k: v for k, v in values.items() if v}


def secret_store(kind: str, parameter_path: str, outputs: Mapping[str, str] | None) -> SecretStore:
    """The store of a deployment: its SSM path, or its secret (from the stack outputs)."""
    if kind == "ssm":
        return SecretStore("ssm", parameter_path)
    location = (outputs or {}).get("SecretsLocation")
    if not location:
        raise StackMissing(
            "the Secrets Manager secret is created by the stack, which is not deployed",
            hint="Run `llamaws deploy` (it pushes the values too).",
        )
    return SecretStore("secretsmanager", location)


def masked(value: str) -> str:
    """A value as it may be shown: its first characters only when it is long."""
    if len(value) >= 20:
        return f"{value[:3]}… ({len(value)} chars)"
    return f"… ({len(value)} chars)"


def read_values(target: AwsTarget, store: SecretStore) -> dict[str, StoredValue]:
    """What the store holds now."""
    try:
        if store.kind == "ssm":
            return _read_parameters(target.client("ssm"), store.location)
        return _read_secret(target.client("secretsmanager"), store.location)
    except _aws_errors() as exc:
        raise LlamawsError(f"cannot read {store.describe()}: {exc}") from None


def push_values(target: AwsTarget, store: SecretStore, values: Mapping[str, str]) -> PushResult:
    """Make the store hold exactly ``values``."""
    for name, value in values.items():
        if store.kind == "ssm" and len(value) > SSM_VALUE_LIMIT:
            raise ConfigError(
                f"{name} is {len(value)} characters; an SSM parameter holds {SSM_VALUE_LIMIT}",
                hint='Set secrets = "secretsmanager" in [tool.llamaws] for larger values.',
            )
    current = read_values(target, store)
    added = tuple(sorted(n for n in values if n not in current))
    changed = tuple(sorted(n for n in values if n in current and current[n].value != values[n]))
    removed = tuple(sorted(n for n in current if n not in values))
    unchanged = tuple(sorted(n for n in values if n in current and n not in changed))
    result = PushResult(store, added, changed, removed, unchanged)
    if not result.changed_anything:
        return result
    try:
        if store.kind == "ssm":
            ssm = target.client("ssm")
            for name in (*added, *changed):
                ssm.put_parameter(
                    Name=f"{store.location}/{name}",
                    Value=values[name],
                    Type="SecureString",
                    Overwrite=True,
                    Tier="Standard",
                    Description="llamaws: an env-file value of the app",
                )
            names = [f"{store.location}/{name}" for name in removed]
            for start in range(0, len(names), _DELETE_BATCH):
                ssm.delete_parameters(Names=names[start : start + _DELETE_BATCH])
        else:
            target.client("secretsmanager").put_secret_value(
                SecretId=store.location, SecretString=json.dumps(dict(sorted(values.items())))
            )
    except _aws_errors() as exc:
        raise LlamawsError(f"cannot write {store.describe()}: {exc}") from None
    return result


def _read_parameters(ssm: Any, path: str) -> dict[str, StoredValue]:
    found: dict[str, StoredValue] = {}
    prefix = path.rstrip("/") + "/"
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=False, WithDecryption=True
    ):
        for parameter in page.get("Parameters", []):
            name = str(parameter["Name"]).removeprefix(prefix)
            found[name] = StoredValue(
                name,
                str(parameter["Value"]),
                int(parameter["Version"]) if "Version" in parameter else None,
                parameter.get("LastModifiedDate"),
            )
    return found


def _read_secret(secretsmanager: Any, arn: str) -> dict[str, StoredValue]:
    answer = secretsmanager.get_secret_value(SecretId=arn)
    try:
        data = json.loads(answer.get("SecretString") or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LlamawsError(
            f"the secret {arn} is not a JSON object of env values",
            hint="Push the values again with `llamaws secrets push`.",
        )
    updated = answer.get("CreatedDate")
    return {str(k): StoredValue(str(k), str(v), None, updated) for k, v in data.items()}


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
