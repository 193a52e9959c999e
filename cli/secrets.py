"""``llamaws secrets push|list``: the app's env-file values in the store the stack reads.

Thin, over ``infra.secret_values``. Values are never printed in full: ``list`` shows names,
a masked hint and whether the store matches the env files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .operate import AppDir, EndpointUrl, Profile, Region, Stage, errors

if TYPE_CHECKING:
    from llamaws.infra.secret_values import SecretStore
    from llamaws.infra.target import AwsTarget

__all__ = ["app"]

app = typer.Typer(
    name="secrets",
    help="Push the app's env-file values to SSM / Secrets Manager; list them (masked).",
    no_args_is_help=True,
)


def _store(app_dir: Path, stage: str | None, aws: AwsTarget) -> tuple[SecretStore, Path]:
    from llamaws.infra.secret_values import secret_store
    from llamaws.infra.stacks import describe_stack

    from .operate import resolve

    deployment, settings = resolve(app_dir, stage)
    outputs = None
    if settings.secrets == "secretsmanager":
        stack = describe_stack(aws.client("cloudformation"), settings.resolved_stack_name)
        outputs = stack.outputs if stack is not None else None
    return secret_store(settings.secrets, settings.parameter_path, outputs), deployment.config_dir


@app.command(epilog="Example:\n\n  $ llamaws secrets push examples/hello")
def push(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
) -> None:
    """Make the store hold exactly the env files' values (new, changed, removed)."""
    from llamaws.adapter.config import resolve_deployment
    from llamaws.infra.secret_values import env_file_values, push_values

    from .operate import target

    with errors(ctx):
        aws = target(endpoint_url, region, profile)
        aws.identity()
        store, _ = _store(app_dir, stage, aws)
        result = push_values(aws, store, env_file_values(resolve_deployment(app_dir)))
    print(f"Pushed: {result.summary()}.")
    for label, names in (("new", result.added), ("changed", result.changed),
                         ("removed", result.removed)):  # fmt: skip
        if names:
            print(f"  {label}: {', '.join(names)}")
    if result.changed_anything:
        print(
            "Running containers keep the values they read at their cold start; new ones "
            "read these (a deploy with new code replaces them all).",
            file=sys.stderr,
        )


@app.command("list", epilog="Example:\n\n  $ llamaws secrets list examples/hello --json")
def list_values(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Names of the stored values, masked, and whether each matches the env files."""
    from llamaws.adapter.config import resolve_deployment
    from llamaws.infra.secret_values import env_file_values, masked, read_values

    from .operate import target

    with errors(ctx):
        aws = target(endpoint_url, region, profile)
        aws.identity()
        store, _ = _store(app_dir, stage, aws)
        stored = read_values(aws, store)
        local = env_file_values(resolve_deployment(app_dir))
    rows: list[dict[str, Any]] = []
    for name in sorted({*stored, *local}):
        value = stored.get(name)
        if value is None:
            state = "not pushed"
        elif name not in local:
            state = "not in the env files"
        else:
            state = "same as the env files" if local[name] == value.value else "differs"
        rows.append(
            {
                "name": name,
                "value": masked(value.value) if value is not None else None,
                "state": state,
                "version": value.version if value is not None else None,
                "updated": value.updated.isoformat() if value and value.updated else None,
            }
        )
    if as_json:
        print(json.dumps({"store": store.describe(), "values": rows}, indent=2))
        return
    print(f"{store.describe()}:", file=sys.stderr)
    if not rows:
        print("  no values (the app's env files are empty or absent)", file=sys.stderr)
    width = max((len(str(row["name"])) for row in rows), default=0)
    for row in rows:
        shown = row["value"] or "-"
        version = f"  v{row['version']}" if row["version"] else ""
        print(f"  {row['name']:<{width}}  {shown:<22} {row['state']}{version}")
