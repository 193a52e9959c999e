"""The app's env-file values in the cloud: read at the cold start from SSM or Secrets Manager.

Against the moto server over HTTP (real boto3 calls, ``AWS_ENDPOINT_URL_*``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from llamaws.adapter.errors import ConfigError
from llamaws.adapter.secrets import load_app_secrets

from .engines import MotoServer


@pytest.fixture
def endpoints(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_server.endpoint)
    yield moto_server.endpoint


def test_ssm_parameters_under_the_path_become_variables(endpoints: str) -> None:
    ssm = boto3.client("ssm", endpoint_url=endpoints)
    path = "/llamaws/llamaws-secrets-a/env"
    ssm.put_parameter(Name=f"{path}/API_KEY", Value="s3cr3t", Type="SecureString")
    ssm.put_parameter(Name=f"{path}/GREETING", Value="hello world", Type="String")
    for n in range(12):  # more than one page (10 per page)
        ssm.put_parameter(Name=f"{path}/EXTRA_{n}", Value=str(n), Type="SecureString")
    ssm.put_parameter(Name="/llamaws/other-stack/env/API_KEY", Value="not ours", Type="String")
    values = load_app_secrets({"LLAMAWS_SSM_PATH": path})
    assert values["API_KEY"] == "s3cr3t" and values["GREETING"] == "hello world"
    assert len(values) == 14 and values["EXTRA_11"] == "11"


def test_a_secrets_manager_secret_holds_a_json_object_of_variables(endpoints: str) -> None:
    client = boto3.client("secretsmanager", endpoint_url=endpoints)
    arn = client.create_secret(
        Name="llamaws-secrets-b", SecretString=json.dumps({"API_KEY": "s3cr3t", "N": 1})
    )["ARN"]
    assert load_app_secrets({"LLAMAWS_SECRET_ARN": arn}) == {"API_KEY": "s3cr3t", "N": "1"}
    bad = client.create_secret(Name="llamaws-secrets-c", SecretString="not json")["ARN"]
    with pytest.raises(ConfigError, match="is not a JSON object of env values"):
        load_app_secrets({"LLAMAWS_SECRET_ARN": bad})


def test_nothing_is_read_without_a_location() -> None:
    assert load_app_secrets({}) == {}
