"""A minimal streaming runtime for harness tests: llamaws's streaming protocol, no app.

``python -m tests.lambda_stream_runtime`` polls ``AWS_LAMBDA_RUNTIME_API`` like the
streaming runtime loop and answers each HTTP event by its path with the loop's own
:class:`~llamaws.adapter.lambda_runtime.streaming.StreamedResponse`:

- ``/fail``: a prelude, the chunk ``partial``, then an error (trailers);
- ``/chunks?n=N&gap=S``: ``N`` chunks ``chunk <i>\\n``, ``S`` seconds apart;
- anything else: ``/error`` before the first byte.
"""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import parse_qs

from llamaws.adapter.lambda_runtime.streaming import RuntimeApi, StreamedResponse

__all__ = ["main"]


async def _answer(stream: StreamedResponse, path: str, query: dict[str, list[str]]) -> None:
    headers = [(b"content-type", b"text/plain")]
    await stream.send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/fail":
        await stream.send({"type": "http.response.body", "body": b"partial", "more_body": True})
        stream.fail(RuntimeError("boom after the first byte"))
        return
    count, gap = int(query.get("n", ["3"])[0]), float(query.get("gap", ["0.2"])[0])
    for index in range(count):
        if index:
            await asyncio.sleep(gap)
        chunk = f"chunk {index}\n".encode()
        await stream.send({"type": "http.response.body", "body": chunk, "more_body": True})
    await stream.send({"type": "http.response.body", "body": b"", "more_body": False})


def main() -> None:
    runtime = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    loop = asyncio.new_event_loop()
    while True:
        invocation = runtime.next()
        event = json.loads(invocation.body)
        path = event.get("rawPath", "")
        if path not in ("/fail", "/chunks"):
            runtime.error(invocation.request_id, ValueError(f"no answer for {path!r}"))
            continue
        stream = StreamedResponse(runtime.address, invocation.request_id)
        query = parse_qs(event.get("rawQueryString", ""))
        loop.run_until_complete(_answer(stream, path, query))
        loop.run_until_complete(stream.finish())


if __name__ == "__main__":
    main()
