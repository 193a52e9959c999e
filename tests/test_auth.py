"""Auth of a deployed API (``[tool.llamaws] auth``), through the real Lambda handler.

``llamaws serve --lambda`` (the handler under the Runtime Interface Emulator, state on
the moto server) with ``auth = "key"`` (the default), ``"none"`` and ``"iam"``; keys made
with ``llamaws keys``; the official Python client with a key and with SigV4; the
sign-in page's cookie in headless Chromium with the example UI. The resolution of the
setting and the adapter's own IAM check run in process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient

from llamaws.adapter.config import resolve_auth, resolve_deployment
from llamaws.adapter.errors import ConfigError
from llamaws.adapter.keys import KeyStore
from llamaws.adapter.lambda_runtime.container import ContainerSettings
from llamaws.adapter.store.client import TableClient

from .engines import AWS_TEST_ENV, MotoServer
from .lambda_service import LambdaService
from .support import EXAMPLES, ROOT, Emulator, free_port, wait_until
from .test_browser import BROWSER_DIR, CHROMIUM, _missing
from .ui_support import ui_app_copy

pytestmark = [pytest.mark.timeout(120)]

CACHE_SECONDS = 2.0
"""``LLAMAWS_AUTH_CACHE_SECONDS`` of the emulated function: revocation delay."""
HEALTH = ("/health", "/healthz", "/livez", "/readyz", "/deployments/hello/health")


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Served:
    """A ``llamaws serve --lambda`` process and the table it keeps runs and keys in."""

    emulator: Emulator
    table: str
    endpoint: str

    @property
    def url(self) -> str:
        return self.emulator.url

    def keys(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``llamaws keys <args> APP_DIR --endpoint-url … --table …``."""
        done = subprocess.run(
            [sys.executable, "-m", "llamaws.cli.main", "keys", *args, str(self.emulator.app_dir),
             "--endpoint-url", self.endpoint, "--table", self.table],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def new_key(self, name: str = "") -> str:
        """``llamaws keys create``: the key alone on stdout, the rest on stderr."""
        created = self.keys("create", "--name", name)
        assert re.fullmatch(r"llamaws_[0-9a-f]{12}_[\w-]{43}\n", created.stdout), created.stdout
        assert "sign in at /deployments/" in created.stderr
        return created.stdout.strip()


def _app(root: Path, example: str, auth: str | None) -> Path:
    app = root / example
    if example == "ui-app":
        app = ui_app_copy(root)
    else:
        shutil.copytree(EXAMPLES / example, app, ignore=shutil.ignore_patterns("workflows.db*"))
    if auth is not None:
        with (app / "pyproject.toml").open("a") as pyproject:
            pyproject.write(f'\n[tool.llamaws]\nauth = "{auth}"\n')
    return app


def _serve(
    root: Path,
    moto: MotoServer,
    auth: str | None,
    *extra: str,
    example: str = "hello",
    containers: int = 2,
    streaming: bool = True,
) -> Served:
    table = f"llamaws-auth-{uuid.uuid4().hex[:10]}"
    args = [
        "--lambda", "--lambda-containers", str(containers), "--lambda-timeout", "15",
        "--sweep-interval", "0", "--persistence", "dynamodb",
        "--dynamodb-endpoint", moto.endpoint, "--dynamodb-table", table, *extra,
    ]  # fmt: skip
    emulator = Emulator(
        _app(root, example, auth),
        free_port(),
        args,
        env={
            "LLAMAWS_AUTH_CACHE_SECONDS": str(CACHE_SECONDS),
            "LLAMAWS_STREAMING": "1" if streaming else "0",
        },
    )
    emulator.start(wait=False)
    return Served(emulator, table, moto.endpoint)


def _until_ready(served: Served, auth: httpx.Auth | None = None) -> None:
    def ready() -> bool:
        process = served.emulator.process
        assert process is not None and process.poll() is None, served.emulator.logs()
        return httpx.get(f"{served.url}/health", auth=auth, timeout=30).status_code == 200

    wait_until(ready, timeout=90, interval=0.2, what="llamaws serve --lambda to answer")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Served]:
    """examples/hello as it is: no ``[tool.llamaws]``, so ``auth = "key"``."""
    served = _serve(tmp_path_factory.mktemp("keyed"), moto_server, None)
    _until_ready(served)
    yield served
    served.emulator.stop()


class SigV4(httpx.Auth):
    """Signs each request with botocore's SigV4 for service ``lambda`` (as AWS SDKs do)."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str, token: str | None, region: str) -> None:
        from botocore.credentials import Credentials

        self.credentials = Credentials(access_key, secret_key, token)
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers={"host": request.headers["host"]},
        )
        SigV4Auth(self.credentials, "lambda", self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


def sigv4(secret: str | None = None) -> SigV4:
    """Signatures with the credentials the emulator has (the tests' dummy ones)."""
    return SigV4(
        AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        secret or AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        AWS_TEST_ENV["AWS_SESSION_TOKEN"],
        AWS_TEST_ENV["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Served]:
    """examples/hello with ``auth = "iam"``."""
    served = _serve(tmp_path_factory.mktemp("iam"), moto_server, "iam")
    _until_ready(served, sigv4())
    yield served
    served.emulator.stop()


def detail(response: httpx.Response) -> str:
    text = response.json()["detail"]
    assert isinstance(text, str) and "\n" not in text
    return text


# -- the setting ---------------------------------------------------------------------------


def _deployment_with(tmp_path: Path, tool: str, file: str = "pyproject.toml") -> Path:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns("workflows.db*"))
    with (app / file).open("a") as handle:
        handle.write(tool)
    return app


def test_auth_is_key_unless_set(tmp_path: Path) -> None:
    assert resolve_auth(resolve_deployment(EXAMPLES / "hello")) == "key"
    assert (
        resolve_auth(resolve_deployment(_deployment_with(tmp_path, "\n[tool.llamaws]\n"))) == "key"
    )


@pytest.mark.parametrize("mode", ["key", "iam", "none"])
def test_auth_is_read_from_tool_llamaws(tmp_path: Path, mode: str) -> None:
    app = _deployment_with(tmp_path, f'\n[tool.llamaws]\nauth = "{mode}"\n')
    assert resolve_auth(resolve_deployment(app)) == mode


def test_llamaws_auth_variable_wins_over_the_file(tmp_path: Path) -> None:
    app = _deployment_with(tmp_path, '\n[tool.llamaws]\nauth = "iam"\n')
    assert resolve_auth(resolve_deployment(app), "none") == "none"


def test_unknown_auth_mode_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    app = _deployment_with(tmp_path, '\n[tool.llamaws]\nauth = "open"\n')
    with pytest.raises(ConfigError) as caught:
        resolve_auth(resolve_deployment(app))
    assert "[tool.llamaws] field 'auth': 'open' is not an auth mode" in str(caught.value)
    assert '"none"' in str(caught.value)


# -- auth = "key" through the handler ----------------------------------------------------------


def test_every_api_route_is_401_without_a_key(keyed: Served) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        refused = [
            http.get("/deployments/hello/workflows"),
            http.post("/deployments/hello/workflows/greet/run", json={"start_event": {}}),
            http.get("/deployments/hello/handlers"),
            http.get("/deployments/hello/docs"),
            http.get("/deployments/hello/openapi.json"),
            http.get("/deployments/hello/"),
            http.get("/deployments/other/workflows"),
        ]
    for response in refused:
        assert response.status_code == 401, (response.request.url, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="/deployments/hello"'
        assert detail(response).startswith("Not authenticated: send 'Authorization: Bearer <key>'")
        assert "x-amzn-requestid" in response.headers  # refused by the function itself


def test_health_paths_stay_open(keyed: Served) -> None:
    for path in HEALTH:
        assert httpx.get(f"{keyed.url}{path}", timeout=30).status_code == 200, path


def test_token_paths_are_left_to_the_token(keyed: Served) -> None:
    with httpx.Client(base_url=f"{keyed.url}/deployments/hello", timeout=30) as http:
        for response in (
            http.get("/tokens/some-token"),
            http.post("/tokens/some-token/success", json={"event": {}}),
        ):
            assert response.status_code != 401, response.text
            assert "www-authenticate" not in response.headers


async def test_official_client_runs_a_workflow_with_a_key(keyed: Served) -> None:
    key = keyed.new_key("client test")
    http = httpx.AsyncClient(
        base_url=f"{keyed.url}/deployments/hello",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    async with http:
        client = WorkflowClient(httpx_client=http)
        assert (await client.list_workflows()).workflows == ["greet"]
        handler = await client.run_workflow("greet", start_event={"name": "Ada"})
    assert handler.status == "completed"
    assert handler.result is not None and handler.result.value == {"result": "Hello, Ada!"}


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        ("Bearer llamaws_0123456789ab_" + "A" * 43, "Invalid API key: unknown"),
        ("Bearer not-a-key", "Invalid API key: not of the form llamaws_<id>_<secret>"),
        ("Basic dXNlcjpwYXNz", "This API takes 'Authorization: Bearer <key>'"),
    ],
    ids=["unknown", "malformed", "not-bearer"],
)
def test_a_bad_key_is_401_invalid_token(keyed: Served, authorization: str, says: str) -> None:
    response = httpx.get(
        f"{keyed.url}/deployments/hello/workflows",
        headers={"Authorization": authorization},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].endswith('error="invalid_token"')
    assert detail(response).startswith(says)


def test_a_key_with_a_wrong_secret_is_401(keyed: Served) -> None:
    key = keyed.new_key()
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    response = httpx.get(
        f"{keyed.url}/deployments/hello/workflows",
        headers={"Authorization": f"Bearer {forged}"},
        timeout=30,
    )
    assert response.status_code == 401
    assert detail(response).startswith("Invalid API key: unknown, or its secret does not match")


def test_a_revoked_key_is_refused_within_the_cache_time(keyed: Served) -> None:
    key = keyed.new_key("to revoke")
    key_id = key.split("_")[1]
    url = f"{keyed.url}/deployments/hello/workflows"
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(4):  # cached by whichever containers serve these
        assert httpx.get(url, headers=headers, timeout=30).status_code == 200
    revoked = keyed.keys("revoke", key_id)
    assert f"Revoked API key {key_id}" in revoked.stderr

    def refused_now() -> httpx.Response | None:
        response = httpx.get(url, headers=headers, timeout=30)
        return response if response.status_code == 401 else None

    # Within the cache time (plus a request's worth of slack), on whichever container.
    refused = wait_until(
        refused_now, timeout=CACHE_SECONDS + 3, interval=0.1, what="the revoked key refused"
    )
    assert f"API key {key_id} was revoked" in detail(refused)
    for _ in range(4):  # and by every container from then on
        assert httpx.get(url, headers=headers, timeout=30).status_code == 401


def test_keys_list_shows_ids_and_states_never_secrets(keyed: Served) -> None:
    key = keyed.new_key("listed")
    key_id = key.split("_")[1]
    listed = json.loads(keyed.keys("list", "--json").stdout)
    mine = [k for k in listed if k["key_id"] == key_id]
    assert mine == [
        {
            "key_id": key_id,
            "name": "listed",
            "created_at": mine[0]["created_at"],
            "revoked_at": None,
            "active": True,
        }
    ]
    table = keyed.keys("list").stdout
    assert key_id in table and "listed" in table and "active" in table
    assert key.split("_", 2)[2] not in json.dumps(listed) + table


def test_keys_are_stored_as_sha256_hashes_only(keyed: Served) -> None:
    import hashlib

    import boto3

    key = keyed.new_key()
    client = boto3.client("dynamodb", endpoint_url=keyed.endpoint)
    item = client.get_item(
        TableName=keyed.table, Key={"PK": {"S": f"K#{key.split('_')[1]}"}, "SK": {"S": "KEY"}}
    )["Item"]
    assert item["secret_sha256"]["S"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.split("_", 2)[2] not in json.dumps(item)


def test_keys_errors_are_one_line(keyed: Served, tmp_path: Path) -> None:
    unknown = keyed.keys("revoke", "0123456789ab", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"Error: no API key '0123456789ab' in table '{keyed.table}'. "
        "`llamaws keys list` shows the key ids."
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", "keys", "list", str(EXAMPLES / "hello"),
         "--endpoint-url", keyed.endpoint],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"Error: table 'llamaws-hello' at {keyed.endpoint} does not exist. "
        "Deploy the app first, or pass --table / --endpoint-url."
    ]


# -- the sign-in page --------------------------------------------------------------------------


def test_sign_in_exchanges_a_key_for_a_session_cookie_the_api_accepts(keyed: Served) -> None:
    key = keyed.new_key("browser")
    with httpx.Client(base_url=f"{keyed.url}/deployments/hello", timeout=30) as http:
        page = http.get("/auth", params={"next": "/deployments/hello/docs"})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'name="next" value="/deployments/hello/docs"' in page.text
        wrong = http.post("/auth", data={"key": "llamaws_0123456789ab_" + "A" * 43})
        assert wrong.status_code == 401 and "Invalid API key" in wrong.text
        assert "set-cookie" not in wrong.headers
        signed_in = http.post("/auth", data={"key": key, "next": "/deployments/hello/docs"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/deployments/hello/docs"
        cookie = signed_in.headers["set-cookie"]
        attributes = [part.strip() for part in cookie.split(";")]
        assert attributes[0].startswith("llamaws_session=")
        assert key not in cookie  # a session of its own, not the key
        assert set(attributes[1:]) == {
            "Path=/deployments/hello", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Strict",
        }  # fmt: skip
        session = attributes[0].split("=", 1)[1]
        with_cookie = {"Cookie": f"other=1; llamaws_session={session}"}
        assert http.get("/workflows", headers=with_cookie).status_code == 200
        assert key.split("_")[1] in http.get("/auth", headers=with_cookie).text  # signed in

        out = http.post("/auth/sign-out", headers=with_cookie)
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        wait_until(
            lambda: http.get("/workflows", headers=with_cookie).status_code == 401,
            timeout=CACHE_SECONDS + 3,
            what="the signed-out session to be refused",
        )


def test_a_cross_site_request_cannot_use_the_session_cookie(keyed: Served) -> None:
    with httpx.Client(base_url=f"{keyed.url}/deployments/hello", timeout=30) as http:
        signed_in = http.post("/auth", data={"key": keyed.new_key()})
        session = signed_in.headers["set-cookie"].split(";")[0]
        run = {"start_event": {"name": "X"}}
        forged = http.post(
            "/workflows/greet/run",
            json=run,
            headers={"Cookie": session, "Sec-Fetch-Site": "cross-site"},
        )
        assert forged.status_code == 401
        assert detail(forged) == "A cross-site request cannot use the session cookie."
        own = http.post(
            "/workflows/greet/run",
            json=run,
            headers={"Cookie": session, "Sec-Fetch-Site": "same-origin"},
        )
        assert own.status_code == 200, own.text


def test_a_page_navigation_without_credentials_goes_to_the_sign_in_page(keyed: Served) -> None:
    response = httpx.get(
        f"{keyed.url}/deployments/hello/",
        headers={"Sec-Fetch-Mode": "navigate", "Accept": "text/html,*/*;q=0.8"},
        timeout=30,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/deployments/hello/auth?next=/deployments/hello/"


def test_sign_in_goes_nowhere_outside_the_deployment(keyed: Served) -> None:
    key = keyed.new_key()
    with httpx.Client(base_url=f"{keyed.url}/deployments/hello", timeout=30) as http:
        for target in ("https://evil.example/", "//evil.example/x", "/deployments/other/"):
            response = http.post("/auth", data={"key": key, "next": target})
            assert response.headers["location"] == "/deployments/hello/", target


def test_sign_in_from_another_site_is_refused(keyed: Served) -> None:
    key = keyed.new_key()
    response = httpx.post(
        f"{keyed.url}/deployments/hello/auth",
        data={"key": key},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=30,
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


# -- auth = "none" -----------------------------------------------------------------------------


def test_the_api_is_open_only_when_auth_none_is_set(
    keyed: Served, tmp_path: Path, moto_server: MotoServer
) -> None:
    assert httpx.get(f"{keyed.url}/deployments/hello/workflows", timeout=30).status_code == 401
    served = _serve(tmp_path, moto_server, "none")
    try:
        _until_ready(served)
        response = httpx.get(f"{served.url}/deployments/hello/workflows", timeout=30)
        assert response.status_code == 200 and response.json() == {"workflows": ["greet"]}
        assert httpx.get(f"{served.url}/deployments/hello/auth", timeout=30).status_code == 404
        assert "auth = 'none': the API is open" in served.emulator.logs()
    finally:
        served.emulator.stop()


# -- auth = "iam" ------------------------------------------------------------------------------


def test_iam_unsigned_request_is_403_before_the_function(signed: Served) -> None:
    response = httpx.get(f"{signed.url}/deployments/hello/workflows", timeout=30)
    assert response.status_code == 403
    assert response.json() == {"Message": "Forbidden"}
    assert "x-amzn-requestid" not in response.headers  # no invocation


async def test_iam_official_client_with_sigv4_runs_a_workflow(signed: Served) -> None:
    http = httpx.AsyncClient(base_url=f"{signed.url}/deployments/hello", auth=sigv4(), timeout=30)
    async with http:
        client = WorkflowClient(httpx_client=http)
        handler = await client.run_workflow("greet", start_event={"name": "Bo"})
        events = [e.type async for e in client.get_workflow_events(handler.handler_id)]
    assert handler.result is not None and handler.result.value == {"result": "Hello, Bo!"}
    assert events[-1] == "StopEvent"


def test_iam_signature_of_other_credentials_or_another_body_is_403(signed: Served) -> None:
    url = f"{signed.url}/deployments/hello/workflows/greet/run"
    wrong_secret = httpx.post(url, json={"start_event": {}}, auth=sigv4("not-the-secret"))
    assert wrong_secret.status_code == 403

    request = httpx.Request("POST", url, content=b'{"start_event": {"name": "A"}}')
    signed_request = next(sigv4().auth_flow(request))
    signed_request.stream = httpx.ByteStream(b'{"start_event": {"name": "B"}}')
    with httpx.Client(timeout=30) as http:
        assert http.send(signed_request).status_code == 403
    assert "SigV4: the signature does not match" in signed.emulator.logs()


def test_iam_gate_refuses_an_event_without_a_verified_caller(
    moto_server: MotoServer, dynamo_table_name: str, tmp_path: Path
) -> None:
    from llamaws.local.lambda_events import http_event

    settings = ContainerSettings(
        app_dir=_app(tmp_path, "hello", None),
        table=dynamo_table_name,
        dynamodb_endpoint=moto_server.endpoint,
        create_table=True,
        auth="iam",
    )
    service = LambdaService(settings, containers=1)
    try:
        event = http_event("GET", "/deployments/hello/workflows", "", [("host", "x")], b"")
        unverified = service.containers[0].invoke(event).result()
        assert unverified["statusCode"] == 401
        assert unverified["headers"]["www-authenticate"].startswith("AWS4-HMAC-SHA256")
        assert "auth = 'iam'" in json.loads(unverified["body"])["detail"]
        event["requestContext"]["authorizer"] = {
            "iam": {"userArn": "arn:aws:iam::123456789012:user/ci", "accessKey": "AKIA"}
        }
        assert service.containers[0].invoke(event).result()["statusCode"] == 200
    finally:
        service.close()


# -- the key cache -----------------------------------------------------------------------------


def test_a_container_reads_a_key_once_per_cache_period(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    from llamaws.adapter.store.table import create_table

    table = TableClient(dynamo_table_name, endpoint_url=moto_server.endpoint)
    create_table(table.client, dynamo_table_name)
    reads: list[str] = []
    table.client.meta.events.register(
        "before-call.dynamodb.GetItem", lambda **kw: reads.append("GetItem")
    )
    now = [0.0]
    store = KeyStore(table, cache_seconds=30, clock=lambda: now[0])

    async def scenario() -> list[int]:
        key = (await store.create("cached")).key
        counts = []
        for moment in (0.0, 10.0, 29.9, 30.0, 45.0):
            now[0] = moment
            await store.verify_key(key)
            counts.append(len(reads))
        return counts

    assert asyncio.run(scenario()) == [1, 1, 1, 2, 2]


# -- the UI in a browser -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_the_ui_works_in_chromium_after_signing_in(tmp_path: Path, moto_server: MotoServer) -> None:
    # Three containers: the UI's event stream holds one while an answer and the run's
    # continue invocation take the others. The long-poll (no response streaming): the UI
    # shows the result only if it resumes its event stream after the last id.
    served = _serve(
        tmp_path, moto_server, None, "--preview", example="ui-app", containers=3, streaming=False
    )
    try:
        _until_ready(served)
        key = served.new_key("chromium")
        result = subprocess.run(
            ["node", str(BROWSER_DIR / "sign_in.mjs"), served.url, key],
            capture_output=True, text=True, timeout=90, cwd=BROWSER_DIR,
            env={**os.environ, "CHROMIUM_PATH": CHROMIUM}, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        served.emulator.stop()
    assert "error" not in report, report["error"]
    # The UI's files are open (CloudFront / S3 in the cloud), its API calls are not.
    assert report["before"].startswith("error: Not authenticated")
    assert re.search(r"/deployments/ui-app/auth\?next=(/|%2F)deployments", report["signInUrl"])
    assert report["wrongKey"] == {"status": 401, "error": "Invalid API key: unknown, or its "
                                  "secret does not match."}  # fmt: skip
    assert report["afterSignIn"].endswith("/deployments/ui-app/ui/")
    cookie = report["cookie"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert cookie["path"] == "/deployments/ui-app"
    assert 0 < cookie["expires"] - time.time() <= 43200 + 60
    assert "llamaws_session" not in report["documentCookie"]  # HttpOnly: no script reads it
    assert report["ui"]["prompt"] == "What is your favourite colour?"
    assert report["ui"]["answerStatus"] == 200
    assert report["ui"]["result"] == "Your favourite is blue."
    assert report["failed"] == [] and report["consoleErrors"] == []
