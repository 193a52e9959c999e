"""The AWS requests a moto server recorded, as IAM actions on resources, checked against a
policy document (the deploy role's, in ``docs/ci.md``).

moto's recorder (``/moto-api/recorder/…``) writes each request's method, URL, headers and
body. The caller's access key, the service and the action come from the request itself
(SigV4 ``Credential=``, ``X-Amz-Target`` or the query protocol's ``Action=``, S3 and
CloudFront REST paths); the resource ARN from the parameters the action names.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Call", "allowed", "calls", "policy_documents"]

_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d+/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Call:
    """One recorded request as IAM sees it."""

    access_key: str
    action: str
    """``service:Action``."""
    resource: str
    """The ARN acted on (``*`` when the action names none)."""
    parameters: dict[str, Any]


def calls(recording: str) -> list[Call]:
    """The recorded requests, in order (unsigned ones, e.g. moto's own API, left out)."""
    found = []
    for entry in _entries(recording):
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        signed = _CREDENTIAL.search(headers.get("authorization", ""))
        if not signed:
            continue
        access_key, service = signed.groups()
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        found.append(_call(access_key, service, entry["method"], entry["url"], headers, body))
    return found


def _entries(recording: str) -> list[dict[str, Any]]:
    """The recorder's JSON objects: moto's threads may append two to one line."""
    decoder = json.JSONDecoder()
    entries: list[dict[str, Any]] = []
    position = 0
    while True:
        start = recording.find("{", position)
        if start < 0:
            return entries
        entry, position = decoder.raw_decode(recording, start)
        entries.append(entry)


def _call(
    access_key: str, service: str, method: str, url: str, headers: dict[str, str], body: str
) -> Call:
    parts = urlsplit(url)
    if "x-amz-target" in headers:
        action = headers["x-amz-target"].rsplit(".", 1)[-1]
        params: dict[str, Any] = json.loads(body) if body.strip() else {}
    elif service == "s3":
        return _s3_call(access_key, method, parts.path, parse_qs(parts.query, True))
    elif service == "cloudfront":
        segments = parts.path.strip("/").split("/")
        distribution = segments[2] if len(segments) > 2 else "*"
        verb = "CreateInvalidation" if method == "POST" else "GetInvalidation"
        return Call(access_key, f"cloudfront:{verb}",
                    f"arn:aws:cloudfront::*:distribution/{distribution}", {})  # fmt: skip
    else:
        query = {k: v[0] for k, v in parse_qs(body or parts.query, True).items()}
        action = query.pop("Action", "?")
        params = query
    return Call(access_key, f"{service}:{action}", _resource(service, params), params)


def _s3_call(access_key: str, method: str, path: str, query: dict[str, list[str]]) -> Call:
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not key:
        action = {"GET": "ListBucket", "HEAD": "ListBucket"}.get(method, f"{method}Bucket")
        if method == "POST" and "delete" in query:
            action = "DeleteObject"
        return Call(access_key, f"s3:{action}", f"arn:aws:s3:::{bucket}", {})
    action = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject",
              "DELETE": "DeleteObject"}.get(method, f"{method}Object")  # fmt: skip
    return Call(access_key, f"s3:{action}", f"arn:aws:s3:::{bucket}/{key}", {})


def _resource(service: str, params: dict[str, Any]) -> str:
    if service == "ssm":
        name = params.get("Name") or params.get("Path") or (params.get("Names") or ["*"])[0]
        return f"arn:aws:ssm:*:*:parameter{name}"
    if service == "dynamodb" and "TableName" in params:
        return f"arn:aws:dynamodb:*:*:table/{params['TableName']}"
    if service == "cloudformation" and "StackName" in params:
        stack = str(params["StackName"])
        return stack if stack.startswith("arn:") else f"arn:aws:cloudformation:*:*:stack/{stack}/*"
    if service == "sts" and "RoleArn" in params:
        return str(params["RoleArn"])
    return "*"


def policy_documents(markdown: str) -> list[dict[str, Any]]:
    """The IAM policy documents (fenced ``json`` blocks with a ``Statement``) of a page."""
    blocks = re.findall(r"```json\n(.*?)```", markdown, re.S)
    return [doc for doc in map(json.loads, blocks) if "Statement" in doc]


def allowed(call: Call, policy: dict[str, Any]) -> bool:
    """Whether an ``Allow`` statement of ``policy`` covers ``call`` (ACCOUNT, REGION: any)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = _list(statement["Action"])
        resources = [
            r.replace("ACCOUNT", "*").replace("REGION", "*") for r in _list(statement["Resource"])
        ]
        if not any(fnmatch.fnmatchcase(call.action, a) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(call.resource, r) for r in resources):
            return True
    return False


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
