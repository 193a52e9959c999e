"""The app's env-file values in the cloud: read once, at the cold start.

The stack never puts them in the template (nor the bundle); ``llamaws deploy``
writes them, and the function finds where from its environment:

- ``LLAMAWS_SSM_PATH``: every SSM parameter under that path (``SecureString``
  decrypted), named by its last path segment: ``/llamaws/<stack>/env/API_KEY`` →
  ``API_KEY``;
- ``LLAMAWS_SECRET_ARN``: one Secrets Manager secret whose value is a JSON object
  ``{"API_KEY": "…"}``.

Neither set (local runs): nothing is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["SECRET_ARN_ENV", "SSM_PATH_ENV", "load_app_secrets"]

SSM_PATH_ENV = "LLAMAWS_SSM_PATH"
SECRET_ARN_ENV = "LLAMAWS_SECRET_ARN"


def load_app_secrets(environ: Mapping[str, str], *, client: Any = None) -> dict[str, str]:
    """The app's env-file values from SSM or Secrets Manager (``{}`` when not configured)."""
    path = environ.get(SSM_PATH_ENV)
    arn = environ.get(SECRET_ARN_ENV)
    if path:
        return _from_parameters(path, client or _client("ssm"))
    if arn:
        return _from_secret(arn, client or _client("secretsmanager"))
    return {}


def _client(service: str) -> Any:
    """boto3 honours ``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` itself."""
    import boto3

    return boto3.client(service)  # type: ignore[call-overload]


def _from_parameters(path: str, ssm: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    prefix = path.rstrip("/") + "/"
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path.rstrip("/") or "/", Recursive=False, WithDecryption=True
    ):
        for parameter in page.get("Parameters", []):
            name = str(parameter["Name"])
            values[name.removeprefix(prefix).rsplit("/", 1)[-1]] = str(parameter["Value"])
    return values


def _from_secret(arn: str, secretsmanager: Any) -> dict[str, str]:
    raw = secretsmanager.get_secret_value(SecretId=arn).get("SecretString") or "{}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"the secret {arn} is not a JSON object of env values") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the secret {arn} is not a JSON object of env values")
    return {str(k): str(v) for k, v in data.items() if v is not None}
