"""HTTP requests as Lambda events and Lambda answers as HTTP responses.

The mapping a Function URL (API Gateway HTTP API, payload 2.0) applies in front of
the function: used by ``llamaws serve --lambda``, the tests and the benchmarks.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

__all__ = ["http_event", "http_response"]

_TEXT_TYPES = (
    "text/", "application/json", "+json", "application/xml", "+xml",
    "application/javascript", "application/x-www-form-urlencoded", "application/graphql",
)  # fmt: skip
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


def http_event(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as a Function URL sends it.

    Header names are lower-cased and repeated values joined with commas; cookies
    move from the ``cookie`` header to ``cookies``; the body is base64 unless it
    is UTF-8 text of a textual content type.
    """
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
        elif key in joined:
            joined[key] = f"{joined[key]},{value}"
        else:
            joined[key] = value
    moment = time.time() if now is None else now
    request_id = request_id or str(uuid.uuid4())
    host = joined.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query_string,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "llamaws-local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(moment)),
            "timeEpoch": int(moment * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query_string:
        event["queryStringParameters"] = _query_parameters(query_string)
    if body:
        if _is_text(joined.get("content-type", "")):
            with contextlib.suppress(UnicodeDecodeError):
                event["body"] = body.decode("utf-8")
        if "body" not in event:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


_BODYLESS = frozenset((204, 304))


def _is_text(content_type: str) -> bool:
    lowered = content_type.lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


def _query_parameters(query_string: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    values: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        values[key] = f"{values[key]},{value}" if key in values else value
    return values


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the handler's answer to an HTTP event.

    Understands the payload 2.0 response (``cookies``) and 1.0 (``multiValueHeaders``);
    a value without ``statusCode`` is a 200 JSON body (HTTP API's inference).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        body = result.encode() if isinstance(result, str) else json.dumps(result).encode()
        return 200, [("content-type", "application/json")], body
    multi = result.get("multiValueHeaders") or {}
    headers: list[tuple[str, str]] = [
        (name.lower(), str(value))
        for name, value in (result.get("headers") or {}).items()
        if name not in multi
    ]
    for name, values in multi.items():
        headers += [(name.lower(), str(value)) for value in values]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    headers = [(name, value) for name, value in headers if name not in _HOP_BY_HOP]
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    status = int(result["statusCode"])
    if status in _BODYLESS or 100 <= status < 200:
        # HTTP forbids a body here: sending one makes the HTTP server fail the response.
        drop = ("content-length", "content-type")
        return status, [(n, v) for n, v in headers if n not in drop], b""
    return status, headers, body
