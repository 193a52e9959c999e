"""``llamaws serve --lambda``'s own parts: the event and response mapping, its CLI rules."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from llamaws.local.lambda_events import http_event, http_response

from .support import ROOT, Emulator, wait_until


def test_http_event_has_the_api_gateway_v2_shape() -> None:
    event = http_event(
        "post",
        "/deployments/hello/workflows/greet/run",
        "a=1&a=2&b=",
        [("Host", "x.on.aws"), ("User-Agent", "ua"), ("X-Multi", "1"), ("x-multi", "2"),
         ("Cookie", "s=1; t=2"), ("Content-Type", "application/json")],
        b'{"start_event": {}}',
        source_ip="10.0.0.1",
        request_id="req-1",
        now=0,
    )  # fmt: skip
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/deployments/hello/workflows/greet/run"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["headers"]["x-multi"] == "1,2" and "cookie" not in event["headers"]
    http = event["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/deployments/hello/workflows/greet/run",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.1",
        "userAgent": "ua",
    }
    assert event["requestContext"]["requestId"] == "req-1"
    assert event["body"] == '{"start_event": {}}' and event["isBase64Encoded"] is False


def test_binary_body_is_base64_and_empty_body_is_absent() -> None:
    binary = http_event("PUT", "/x", "", [("content-type", "image/png")], b"\x89PNG\x00")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x89PNG\x00"
    assert "body" not in http_event("GET", "/x", "", [], b"")


def test_http_response_reads_v2_cookies_v1_multi_value_headers_and_base64() -> None:
    status, headers, body = http_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "content-length": "3"},
            "cookies": ["a=1", "b=2"],
            "body": base64.b64encode(b"\x00ok").decode(),
            "isBase64Encoded": True,
        }
    )
    assert status == 201 and body == b"\x00ok"
    assert headers == [("content-type", "text/plain"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]
    _, v1_headers, _ = http_response(
        {"statusCode": 200, "headers": {"x": "0"}, "multiValueHeaders": {"x": ["1", "2"]}}
    )
    assert v1_headers == [("x", "1"), ("x", "2")]


def test_a_value_without_status_code_is_a_200_json_body() -> None:
    assert http_response({"ok": True}) == (
        200,
        [("content-type", "application/json")],
        b'{"ok": true}',
    )


def test_lambda_mode_refuses_the_memory_store(example_copy: Callable[[str], Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", "serve", str(example_copy("hello")), "--lambda",
         "--persistence", "memory", "--no-reload", "--no-open-browser", "--no-install",
         "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--lambda keeps runs in DynamoDB" in done.stderr


def test_lambda_mode_without_an_endpoint_starts_its_own_engine(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(example_copy("hello"), "--lambda", "--lambda-containers", "1",
                                wait=False)  # fmt: skip

    # With auth = "key" (the default) on a throwaway table, the emulator makes a key.
    key = wait_until(
        lambda: re.search(r"llamaws_[0-9a-f]{12}_[\w-]{43}", emulator.logs()),
        timeout=30,
        what="the session key in the log",
    )[0]

    def ran() -> bool:
        response = httpx.post(
            f"{emulator.url}/deployments/hello/workflows/greet/run",
            json={"start_event": {"name": "Ada"}},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        return bool(response.json()["result"]["value"] == {"result": "Hello, Ada!"})

    wait_until(ran, timeout=60, interval=0.2, what="a run through the self-started engine")
    assert "(moto, for this session)" in emulator.logs()
