"""Live event streams through ``llamaws serve --lambda`` (a script: prints figures).

    uv run python -m bench.stream_latency [--events 30] [--interval 0.5] [--containers 2]
                                          [--open-seconds 130]

A run of the ``progress`` app publishes ``--events`` progress events, one every
``--interval`` seconds, each stamped with its publication time. A client streams
them, resuming from the last id whenever a stream ends before the ``StopEvent`` (what
every client of a deployed app does), in three modes:

- **baseline**: ``llamaws serve`` (uvicorn, the embedded SQLite store), one SSE stream;
- **streaming**: ``llamaws serve --lambda`` with response streaming (the default): the
  streaming runtime loop behind a local Runtime API that hands chunks over as they come;
- **long-poll**: ``llamaws serve --lambda`` with ``LLAMAWS_STREAMING=0`` (RIE containers,
  responses posted whole): the bounded long-poll.

Both Lambda modes keep runs in DynamoDB on a moto server started here; the function
timeout is the stack's default (300 s). Printed per mode: publication-to-arrival
latency (median, p90, max; one clock, one machine), the stream requests (= invocations)
it took; then, for a run that waits for an answer, what keeping its stream open costs
over ``--open-seconds``: invocations, how long each lasted, and invocations per minute.
Goal: streaming median <= 100 ms.
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
    durations: list[float] = field(default_factory=list)
    """How long each stream request lasted."""
    last: str = "-1"
    """The last event id seen."""

    def line(self, mode: str) -> str:
        ordered = sorted(self.latencies)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        return (
            f"{mode:>9}: {len(ordered)} events, latency median "
            f"{statistics.median(ordered) * 1000:.0f} ms p90 {p90 * 1000:.0f} ms "
            f"max {ordered[-1] * 1000:.0f} ms; {self.polls} stream request(s) "
            f"({len(ordered) / max(self.polls, 1):.1f} events each) over {self.seconds:.1f}s"
        )


def _progress(block_data: str, arrived: float, into: Streamed) -> None:
    """Record a Progress event's latency."""
    envelope = json.loads(block_data)
    if envelope["type"] == "Progress":
        into.latencies.append(arrived - envelope["value"]["published_at"])


def follow(
    base: str,
    handler_id: str,
    *,
    after: str = "-1",
    until: float | None = None,
    stop_at: str = "StopEvent",
) -> Streamed:
    """SSE streams resumed from the last id until ``stop_at`` (or ``until``, a clock time).

    Each event is stamped when its line arrives (the stream is read as it comes).
    """
    seen = Streamed()
    last = after
    began = time.monotonic()
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None)) as http:
        while until is None or time.monotonic() < until:
            opened = time.monotonic()
            seen.polls += 1
            done = False
            with http.stream(
                "GET", f"/events/{handler_id}", params={"after_sequence": last}
            ) as response:
                if response.status_code == 204:
                    break
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        last = line[4:]
                    elif line.startswith("data: "):
                        _progress(line[6:], time.time(), seen)
                        done = json.loads(line[6:])["type"] == stop_at
                        if done:
                            break
                    if until is not None and time.monotonic() >= until:
                        break
            seen.durations.append(time.monotonic() - opened)
            if done:
                break
    seen.seconds = time.monotonic() - began
    seen.last = last
    return seen


def start_run(base: str, workflow: str, start_event: dict[str, object]) -> str:
    response = httpx.post(
        f"{base}/workflows/{workflow}/run-nowait", json={"start_event": start_event}, timeout=60
    )
    response.raise_for_status()
    return str(response.json()["handler_id"])


def serve(app: Path, args: list[str], env: dict[str, str] | None = None) -> Emulator:
    # The API's auth (a key by default under --lambda) is not what is measured here.
    emulator = Emulator(
        app, free_port(), args, {**AWS_DUMMY, "LLAMAWS_AUTH": "none", **(env or {})}
    )
    emulator.start(wait=False)
    wait_until(
        lambda: httpx.get(f"{emulator.url}/health", timeout=30).status_code == 200,
        timeout=120,
        interval=0.2,
        what="the emulator",
    )
    return emulator


def lambda_mode(app: Path, endpoint: str, containers: int, streaming: bool) -> Emulator:
    args = [
        "--lambda", "--lambda-containers", str(containers), "--lambda-timeout", "300",
        "--persistence", "dynamodb", "--dynamodb-endpoint", endpoint,
        "--dynamodb-table", f"llamaws-bench-{uuid.uuid4().hex[:8]}",
        "--sweep-interval", "0", "--log-level", "INFO",
    ]  # fmt: skip
    return serve(app, args, {"LLAMAWS_STREAMING": "1" if streaming else "0"})


def open_stream_cost(base: str, seconds: float) -> str:
    """Keep the stream of a run waiting for an answer open for ``seconds``: its cost.

    Requests are cut at the end of the window (each ends by its own bound otherwise);
    the rate per minute comes from how long the requests that ended by themselves lasted.
    """
    handler_id = start_run(base, "asks", {"delay": 0})
    asked = follow(base, handler_id, stop_at="Question")
    seen = follow(base, handler_id, after=asked.last, until=time.monotonic() + seconds)
    whole = seen.durations[:-1] or seen.durations
    each = statistics.median(whole)
    return (
        f"{seen.polls} invocation(s) in {seen.seconds:.0f} s, each lasting {each:.1f} s: "
        f"{60 / each:.2f} invocations per minute"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--containers", type=int, default=2)
    parser.add_argument("--open-seconds", type=float, default=130.0)
    options = parser.parse_args(argv)
    os.environ.update(AWS_DUMMY)
    ticks = {"count": options.events, "interval": options.interval}
    with tempfile.TemporaryDirectory(prefix="llamaws-bench-") as tmp:
        app = write_progress_app(Path(tmp))
        print(
            f"progress run: {options.events} events, one every {options.interval}s",
            file=sys.stderr,
        )

        baseline = serve(app, [])
        try:
            base = f"{baseline.url}/deployments/progress"
            direct = follow(base, start_run(base, "ticks", ticks))
        finally:
            baseline.stop()
        print(direct.line("baseline"))

        engine = start_local_engine()
        results: dict[str, tuple[Streamed, str, int]] = {}
        try:
            for name, streaming in (("streaming", True), ("long-poll", False)):
                emulator = lambda_mode(app, engine.endpoint, options.containers, streaming)
                try:
                    base = f"{emulator.url}/deployments/progress"
                    start_run(base, "ticks", {"count": 1, "interval": 0.0})  # warm (P1 elsewhere)
                    streamed = follow(base, start_run(base, "ticks", ticks))
                    cost = open_stream_cost(base, options.open_seconds)
                    continues = emulator.logs().count("async invocation (continue)")
                finally:
                    emulator.stop()
                results[name] = (streamed, cost, continues)
                print(streamed.line(name))
        finally:
            engine.stop()
        for name, (streamed, cost, continues) in results.items():
            ratio = statistics.median(streamed.latencies) / statistics.median(direct.latencies)
            print(
                f"{name:>9}: median latency / baseline {ratio:.1f}; {continues} continue "
                f"invocation(s) for the runs; open stream of a waiting run: {cost}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
