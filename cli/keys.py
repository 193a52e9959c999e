"""``llamaws keys``: the API keys of a deployment (``auth = "key"``) in its DynamoDB table.

The table is the deployed stack's (its ``TableName`` output), else ``llamaws-<name>``
(``serve --lambda`` / ``--persistence dynamodb``), unless ``--table``; on AWS or on a local
engine (``--endpoint-url``, or ``AWS_ENDPOINT_URL_DYNAMODB``). A new key is printed
once, alone on stdout (``KEY=$(llamaws keys create .)``); everything else goes to
stderr. Storage and hashing: ``docs/auth.md``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from llamaws.adapter.config import Deployment
    from llamaws.adapter.keys import KeyStore

__all__ = ["app"]

app = typer.Typer(
    name="keys",
    help='Create, list and revoke the API keys of a deployment (auth = "key").',
    no_args_is_help=True,
)

AppDir = Annotated[Path, typer.Argument(help="App directory or deployment config file.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="DynamoDB endpoint (a local engine); default: AWS.",
        envvar="AWS_ENDPOINT_URL_DYNAMODB",
    ),
]
Table = Annotated[
    str | None, typer.Option(help="The deployment's table (default: llamaws-<name>).")
]
Region = Annotated[str | None, typer.Option(help="AWS region (default: the environment's).")]


@app.command(epilog="Example:\n\n  $ llamaws keys create examples/hello --name ci")
def create(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    name: Annotated[str, typer.Option(help="A label: who or what uses the key.")] = "",
    endpoint_url: EndpointUrl = None,
    table: Table = None,
    region: Region = None,
) -> None:
    """Create a key and print it (only this once: it is stored as a hash)."""
    with _errors(ctx):
        store, where = _store(app_dir, endpoint_url, table, region)
        new = asyncio.run(store.create(name))
        base = _base_path(app_dir)
    print(
        f"Created API key {new.info.key_id}{f' ({name})' if name else ''} in {where}. "
        "It is shown only now: keep it in a secret store.",
        file=sys.stderr,
    )
    print(f"Use it as 'Authorization: Bearer <key>', or sign in at {base}/auth.", file=sys.stderr)
    print(new.key)


@app.command("list", epilog="Example:\n\n  $ llamaws keys list examples/hello --json")
def list_keys(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    table: Table = None,
    region: Region = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """List the keys (ids, labels, dates; never secrets), revoked ones included."""
    with _errors(ctx):
        store, where = _store(app_dir, endpoint_url, table, region)
        keys = asyncio.run(store.list())
    if as_json:
        print(json.dumps([{**asdict(k), "active": k.active} for k in keys], indent=2))
        return
    if not keys:
        print(f"No API keys in {where}: create one with `llamaws keys create`.", file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    grid = RichTable("id", "name", "created", "status", box=None, pad_edge=False)
    for key in keys:
        status = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        grid.add_row(key.key_id, key.name, key.created_at, status)
    Console(highlight=False).print(grid)


@app.command(epilog="Example:\n\n  $ llamaws keys revoke KEY_ID examples/hello")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (`llamaws keys list`) or the key.")],
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    table: Table = None,
    region: Region = None,
) -> None:
    """Revoke a key and end its sessions: refused everywhere within 30 s (the auth cache)."""
    from llamaws.adapter.keys import KEY_PREFIX

    if key_id.startswith(KEY_PREFIX):
        key_id = key_id.removeprefix(KEY_PREFIX).split("_", 1)[0]
    with _errors(ctx):
        store, where = _store(app_dir, endpoint_url, table, region)
        key = asyncio.run(store.revoke(key_id))
    print(f"Revoked API key {key.key_id} in {where} (at {key.revoked_at}).", file=sys.stderr)


def _store(
    app_dir: Path, endpoint_url: str | None, table: str | None, region: str | None
) -> tuple[KeyStore, str]:
    """The key store on the deployment's table, checked to exist; and where that is."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from llamaws.adapter.config import resolve_deployment
    from llamaws.adapter.errors import LlamawsError
    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient

    deployment = resolve_deployment(app_dir)
    table = table or _deployed_table(deployment, endpoint_url, region)
    if region is None and boto3.session.Session().region_name is None:
        if not endpoint_url:
            raise LlamawsError(
                "no AWS region", hint="Pass --region or set AWS_REGION / AWS_DEFAULT_REGION."
            )
        region = "us-east-1"
    client = TableClient(table, endpoint_url=endpoint_url, region_name=region, max_attempts=3)
    where = f"table '{table}'" + (f" at {endpoint_url}" if endpoint_url else "")
    try:
        client.client.describe_table(TableName=table)
    except NoCredentialsError:
        raise LlamawsError(
            "no AWS credentials found",
            hint="Configure them (aws configure, AWS_PROFILE), or any values for a local engine.",
        ) from None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise LlamawsError(
                f"{where} does not exist",
                hint="Deploy the app first, or pass --table / --endpoint-url.",
            ) from None
        raise LlamawsError(f"cannot read {where}: {exc}") from None
    except BotoCoreError as exc:
        raise LlamawsError(f"cannot reach DynamoDB for {where}: {exc}") from None
    return KeyStore(client), where


def _deployed_table(deployment: Deployment, endpoint_url: str | None, region: str | None) -> str:
    """The table of the deployed stack (its ``TableName`` output), else ``llamaws-<name>``."""
    from llamaws.infra.stacks import deployed_output

    found = deployed_output(deployment, "TableName", endpoint_url=endpoint_url, region=region)
    return found or f"llamaws-{deployment.name}"


def _base_path(app_dir: Path) -> str:
    from llamaws.adapter.config import resolve_deployment

    return resolve_deployment(app_dir).base_path


@contextmanager
def _errors(ctx: typer.Context) -> Iterator[None]:
    """llamaws errors → one ``Error:`` line and exit 1 (tracebacks with ``llamaws -v``)."""
    from llamaws.adapter.errors import LlamawsError

    try:
        yield
    except LlamawsError as exc:
        if ctx.find_root().params.get("verbose"):
            raise
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
