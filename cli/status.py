"""``llamaws status``: the deployment as it runs (thin, over ``infra.status``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .operate import AppDir, EndpointUrl, Profile, Region, Stage, errors

if TYPE_CHECKING:
    from llamaws.infra.status import Status

__all__ = ["register", "status"]


def register(app: typer.Typer) -> None:
    """Add ``status`` to the ``llamaws`` app."""
    app.command(epilog="Example:\n\n  $ llamaws status examples/hello --json")(status)


def status(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Stack state and outputs, the function, the last deploy, runs by status and open waits."""
    from llamaws.infra.status import collect_status

    from .operate import resolve, target

    with errors(ctx):
        aws = target(endpoint_url, region, profile)
        _, settings = resolve(app_dir, stage)
        found = collect_status(aws, settings.resolved_stack_name)
    if as_json:
        print(json.dumps(found.to_json(), indent=2, default=str))
    else:
        print(describe(found, aws.flags()))


def describe(found: Status, flags: str = "") -> str:
    """The status, for people."""
    stack = found.stack
    if stack is None:
        return (
            f"Stack {found.stack_name}: not deployed in {found.where} "
            f"(deploy with `llamaws deploy{flags}`)."
        )
    dates = f"created {_when(stack.created)}" + (
        f", updated {_when(stack.updated)}" if stack.updated else ""
    )
    reason = f": {stack.reason}" if stack.reason else ""
    lines = [f"Stack       {stack.name} {stack.status}{reason} ({dates}) in {found.where}"]
    record = found.record
    if record is not None:
        details = [f"by {record.deployed_by}", f"llamaws {record.llamaws_version}"]
        if record.app_commit:
            details.append(f"commit {record.app_commit}")
        if record.ui_build:
            details.append(f"UI build {record.ui_build}")
        number = f"#{record.number} " if record.number else ""
        lines.append(f"Last deploy {number}at {record.deployed_at}, {', '.join(details)}")
    outputs = stack.outputs
    for label, key in (("API", "ApiUrl"), ("UI", "UiUrl")):
        if outputs.get(key):
            lines.append(f"{label:<11} {outputs[key]}")
    function = found.function
    if function is not None:
        concurrency = (
            f", reserved concurrency {function.reserved_concurrency}"
            if function.reserved_concurrency is not None
            else ""
        )
        lines.append(
            f"Function    {function.name}: {function.runtime} {function.architecture}, "
            f"{function.memory_mb} MB, timeout {function.timeout_seconds} s{concurrency}, "
            f"{function.state}, modified {function.last_modified}"
        )
        if record is not None:
            same = function.code_sha256 == record.code_sha256
            lines.append(
                "            code: the last deploy's bundle"
                if same
                else "            code: differs from the last deploy's bundle (changed outside "
                "llamaws deploy?)"
            )
    if found.runs is not None:
        lines.append(f"Runs        {found.runs.summary()}")
    if found.open_waits is not None:
        lines.append(f"Open waits  {found.open_waits} (wait tokens with a deadline)")
    lines.append("Outputs")
    lines += [f"  {key} = {value}" for key, value in sorted(outputs.items())]
    lines += [f"Note: {problem}" for problem in found.problems]
    return "\n".join(lines)


def _when(value: object) -> str:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)
