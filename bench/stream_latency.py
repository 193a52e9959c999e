"""Live event streams through ``llamaws serve --lambda`` (a script: prints figures).

    uv run python -m bench.stream_latency [--events 30] [--interval 0.5] [--containers 2]

A run of the ``progress`` app publishes ``--events`` progress events, one every
``--interval`` seconds, each stamped with its publication time. A client streams
them:

- **baseline**: ``llamaws serve`` (uvicorn, the embedded SQLite store), one SSE
  stream that stays open;
- **lambda**: ``llamaws serve --lambda`` (RIE containers, DynamoDB on a moto server
  started here), the long-poll every Lambda client goes through: ``GET
  /events/<id>?after_sequence=<last>`` again and again until the ``StopEvent``.

Printed per mode: publication-to-arrival latency (median, p90, max; one clock, one
machine) and what the stream cost in invocations (long-polls, and events per
long-poll). Goal: lambda median <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llamaws.local.engine import start_local_engine
from tests.progress_app import write_progress_app
from tests.support import Emulator, free_port, wait_until

__all__ = ["main"]

AWS_DUMMY = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class Streamed:
    """What one client saw of one run."""

    latencies: list[float] = field(default_factory=list)
    polls: int = 0
    seconds: float = 0.0

    def line(self, mode: str) -> str:
        ordered = sorted(self.latencies)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        return (
            f"{mode:>8}: {len(ordered)} events, latency median {statistics.median(ordered):.3f}s "
            f"p90 {p90:.3f}s max {ordered[-1]:.3f}s; {self.polls} stream request(s) "
            f"({len(ordered) / max(self.polls, 1):.1f} events each) over {self.seconds:.1f}s"
        )


def _progress(block_data: str, arrived: float, into: Streamed) -> bool:
    """Record a Progress event's latency; True for the run's StopEvent."""
    envelope = json.loads(block_data)
    if envelope["type"] == "Progress":
        into.latencies.append(arrived - envelope["value"]["published_at"])
    return bool(envelope["type"] == "StopEvent")


def stream_open(base: str, handler_id: str) -> Streamed:
    """One SSE stream kept open to the end (``llamaws serve``)."""
    seen = Streamed(polls=1)
    began = time.monotonic()
    with (
        httpx.Client(base_url=base, timeout=120) as http,
        http.stream("GET", f"/events/{handler_id}", params={"after_sequence": -1}) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: ") and _progress(line[6:], time.time(), seen):
                break
    seen.seconds = time.monotonic() - began
    return seen


def stream_polling(base: str, handler_id: str) -> Streamed:
    """Long-polls resumed from the last id until the StopEvent (``--lambda``)."""
    seen = Streamed()
    last = "-1"
    began = time.monotonic()
    with httpx.Client(base_url=base, timeout=120) as http:
        while True:
            response = http.get(f"/events/{handler_id}", params={"after_sequence": last})
            arrived = time.time()
            seen.polls += 1
            if response.status_code == 204:
                break
            done = False
            for line in response.text.splitlines():
                if line.startswith("id: "):
                    last = line[4:]
                elif line.startswith("data: "):
                    done = _progress(line[6:], arrived, seen) or done
            if done:
                break
    seen.seconds = time.monotonic() - began
    return seen


def start_run(base: str, events: int, interval: float) -> str:
    response = httpx.post(
        f"{base}/workflows/ticks/run-nowait",
        json={"start_event": {"count": events, "interval": interval}},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["handler_id"])


def serve(app: Path, args: list[str]) -> Emulator:
    # The API's auth (a key by default under --lambda) is not what is measured here.
    emulator = Emulator(app, free_port(), args, {**AWS_DUMMY, "LLAMAWS_AUTH": "none"})
    emulator.start(wait=False)
    wait_until(
        lambda: httpx.get(f"{emulator.url}/health", timeout=30).status_code == 200,
        timeout=120,
        interval=0.2,
        what="the emulator",
    )
    return emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--containers", type=int, default=2)
    options = parser.parse_args(argv)
    os.environ.update(AWS_DUMMY)
    with tempfile.TemporaryDirectory(prefix="llamaws-bench-") as tmp:
        app = write_progress_app(Path(tmp))
        print(
            f"progress run: {options.events} events, one every {options.interval}s",
            file=sys.stderr,
        )

        baseline = serve(app, [])
        try:
            base = f"{baseline.url}/deployments/progress"
            direct = stream_open(base, start_run(base, options.events, options.interval))
        finally:
            baseline.stop()
        print(direct.line("baseline"))

        engine = start_local_engine()
        lambda_mode = serve(
            app,
            [
                "--lambda", "--lambda-containers", str(options.containers),
                "--persistence", "dynamodb", "--dynamodb-endpoint", engine.endpoint,
                "--dynamodb-table", f"llamaws-bench-{uuid.uuid4().hex[:8]}",
                "--sweep-interval", "0", "--log-level", "INFO",
            ],
        )  # fmt: skip
        try:
            base = f"{lambda_mode.url}/deployments/progress"
            start_run(base, 1, 0.0)  # warm both paths (cold starts are bench/lambda.py's P1)
            handler_id = start_run(base, options.events, options.interval)
            polled = stream_polling(base, handler_id)
            logs = lambda_mode.logs()
        finally:
            lambda_mode.stop()
            engine.stop()
        print(polled.line("lambda"))
        continues = logs.count("async invocation (continue)")
        print(
            f"  lambda: {polled.polls} stream invocations + {continues} continue "
            f"invocation(s) for both runs; median ratio lambda/baseline "
            f"{statistics.median(polled.latencies) / statistics.median(direct.latencies):.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
