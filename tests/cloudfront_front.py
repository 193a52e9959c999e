"""A local stand-in for the deployment's CloudFront distribution, for browser tests.

Two behaviours, like the stack's distribution:

- ``<ui base>`` and below: the generated CloudFront Function runs on the viewer
  request (in node, the code as it would be deployed); a response it returns is
  sent as is, else the (maybe rewritten) URI is read from the bucket with a signed
  ``GetObject`` (as origin access control does), with its stored headers, and
  ``If-None-Match`` passed on;
- the rest of ``/deployments/<name>/``: relayed to the API origin (an emulator).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import uvicorn
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llamaws.local.proxy import UIProxy

from .support import free_port, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["cloudfront_front"]

RUNNER = Path(__file__).parent / "browser" / "viewer_request.mjs"


class ViewerRequestFunction:
    """The CloudFront Function, run by node; one request at a time."""

    def __init__(self, code_file: Path) -> None:
        self._process = subprocess.Popen(
            ["node", str(RUNNER), str(code_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            answer: dict[str, Any] = json.loads(self._process.stdout.readline())
        return answer

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def _front_app(
    function: ViewerRequestFunction,
    s3: S3Client,
    bucket: str,
    ui_base: str,
    api: UIProxy,
) -> Starlette:
    def get_object(key: str, etag: str | None) -> Response:
        try:
            if etag:
                got = s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
            else:
                got = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            status = int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            return Response(status_code=status)
        headers = {
            "content-type": got["ContentType"],
            "cache-control": got.get("CacheControl", ""),
            "etag": got["ETag"],
            "last-modified": got["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        return Response(got["Body"].read(), headers=headers)

    async def ui(request: Request) -> Response:
        viewer = {
            "method": request.method,
            "uri": request.url.path,
            "querystring": {},
            "headers": {k: {"value": v} for k, v in request.headers.items()},
        }
        answer = await anyio.to_thread.run_sync(function, viewer)
        if "statusCode" in answer:
            headers = {k: v["value"] for k, v in answer.get("headers", {}).items()}
            return Response(status_code=int(answer["statusCode"]), headers=headers)
        etag = request.headers.get("if-none-match")
        return await anyio.to_thread.run_sync(get_object, answer["uri"].lstrip("/"), etag)

    deployment = ui_base.rsplit("/", 1)[0]
    return Starlette(
        routes=[
            Route(ui_base, ui, methods=["GET", "HEAD"]),
            Route(ui_base + "/{path:path}", ui, methods=["GET", "HEAD"]),
            Route(deployment + "/{path:path}", api.http, methods=["GET", "POST", "DELETE"]),
        ]
    )


@contextmanager
def cloudfront_front(
    *, function_code: str, s3: S3Client, bucket: str, ui_base: str, api_origin: str, tmp: Path
) -> Iterator[str]:
    """Serve the front on a free port for the block; yields its URL."""
    code_file = tmp / "viewer-request.js"
    code_file.write_text(function_code)
    function = ViewerRequestFunction(code_file)
    api = UIProxy(api_origin)
    port = free_port()
    config = uvicorn.Config(_front_app(function, s3, bucket, ui_base, api), host="127.0.0.1",
                            port=port, log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cloudfront-front", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="the CloudFront front")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        function.close()
