"""``llamaws logs``: the function's CloudWatch Logs (thin, over ``infra.logs``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .operate import AppDir, EndpointUrl, Profile, Region, Stage, errors

if TYPE_CHECKING:
    from llamaws.infra.logs import LogLine

__all__ = ["logs", "register"]


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the ``llamaws`` app."""
    app.command(
        epilog="Example:\n\n  $ llamaws logs examples/hello --since 1h --handler c0v4sOrePn\n\n"
        "  $ llamaws logs examples/hello --follow"
    )(logs)


def logs(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    since: Annotated[
        str, typer.Option(help="How far back to start: 90s, 10m, 2h, 1d (or seconds).")
    ] = "10m",
    handler: Annotated[
        str | None, typer.Option("--handler", help="Only the lines of this run (handler id).")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print the lines as stored (JSON).")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object a line: timestamp_ms, stream, event_id, message and the "
            "line's own fields.",
        ),
    ] = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
) -> None:
    """Print the function's logs; each JSON line carries handler_id and run_id."""
    from llamaws.infra.logs import fetch, log_group, render
    from llamaws.infra.logs import follow as follow_logs
    from llamaws.infra.stacks import describe_stack

    from .operate import resolve, target
    from .ui import parse_duration

    try:
        window = parse_duration(since)
    except ValueError as exc:
        print(f"Error: --since: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    with errors(ctx):
        from llamaws.infra.deploy_errors import StackMissing

        aws = target(endpoint_url, region, profile)
        aws.identity()
        _, settings = resolve(app_dir, stage)
        stack = describe_stack(aws.client("cloudformation"), settings.resolved_stack_name)
        if stack is None:
            raise StackMissing(
                f"stack {settings.resolved_stack_name} does not exist in {aws.where()}",
                hint=f"Deploy it with `llamaws deploy{aws.flags()}`.",
            )
        group = log_group(stack.outputs)
        start_ms = int((time.time() - window.total_seconds()) * 1000)
        client = aws.client("logs")
        lines = (
            follow_logs(client, group, start_ms, handler_id=handler)
            if follow
            else fetch(client, group, start_ms, handler_id=handler)
        )
        printed = 0
        try:
            for line in lines:
                text = _json_line(line) if as_json else render(line, raw=raw)
                print(text, flush=follow)
                printed += 1
        except KeyboardInterrupt:
            return
    if not printed:
        which = f" of handler {handler}" if handler else ""
        print(f"No log lines{which} in {group} in the last {since}.", file=sys.stderr)


def _json_line(line: LogLine) -> str:
    """``--json``: the event's metadata and its message (parsed, for a structured line)."""
    return json.dumps(
        {
            "timestamp_ms": line.timestamp_ms,
            "stream": line.stream,
            "event_id": line.event_id,
            "message": line.message,
            "fields": line.fields,
        }
    )
