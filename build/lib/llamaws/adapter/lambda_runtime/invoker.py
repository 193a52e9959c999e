"""Asynchronous self-invocation: hand a run to another invocation.

In the cloud the function invokes itself with ``InvocationType="Event"`` (Lambda
queues it and answers 202). Locally (``llamaws serve --lambda``, the tests) the
payload is POSTed to ``LLAMAWS_ASYNC_INVOKE_URL``, which queues it the same way.
Either way the call returns once the invocation is queued, before the handler's
own invocation ends (a frozen container sends nothing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import ConfigError, LlamawsError

__all__ = ["HttpInvoker", "Invoker", "LambdaInvoker", "invoker_from_env"]


class Invoker(Protocol):
    """Queues an invocation of this function with ``payload``."""

    async def invoke_async(self, payload: Mapping[str, Any]) -> None: ...


class LambdaInvoker:
    """``lambda:InvokeFunction`` with ``InvocationType="Event"`` on ``function_name``."""

    def __init__(self, function_name: str, *, endpoint_url: str | None = None) -> None:
        import boto3

        self.function_name = function_name
        self._client: Any = boto3.client("lambda", endpoint_url=endpoint_url)

    async def invoke_async(self, payload: Mapping[str, Any]) -> None:
        response = await asyncio.to_thread(
            self._client.invoke,
            FunctionName=self.function_name,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
        if response.get("StatusCode") != 202:
            raise LlamawsError(
                f"asynchronous invocation of {self.function_name} answered "
                f"{response.get('StatusCode')}"
            )


class HttpInvoker:
    """POSTs the payload to a local queue (the emulator's async-invoke endpoint)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def invoke_async(self, payload: Mapping[str, Any]) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.url, json=dict(payload))
        if response.status_code >= 300:
            raise LlamawsError(
                f"asynchronous invocation via {self.url} answered {response.status_code}"
            )


def invoker_from_env(environ: Mapping[str, str]) -> Invoker:
    """``LLAMAWS_ASYNC_INVOKE_URL`` when set, else this function by its Lambda name."""
    url = environ.get("LLAMAWS_ASYNC_INVOKE_URL")
    if url:
        return HttpInvoker(url)
    name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if not name:
        raise ConfigError(
            "cannot invoke the function asynchronously: neither LLAMAWS_ASYNC_INVOKE_URL "
            "nor AWS_LAMBDA_FUNCTION_NAME is set"
        )
    return LambdaInvoker(name, endpoint_url=environ.get("AWS_ENDPOINT_URL_LAMBDA"))
