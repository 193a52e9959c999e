"""``llamaws dynamodb``: the deployment table on a given endpoint (local engines, AWS)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(
    name="dynamodb",
    help="Manage the DynamoDB table that holds a deployment's runs.",
    epilog="Example:\n\n  $ llamaws dynamodb create-table --table llamaws-hello",
    no_args_is_help=True,
)


@app.command(
    "create-table",
    epilog="Example:\n\n  $ llamaws dynamodb create-table --table llamaws-hello "
    "--endpoint http://127.0.0.1:5000",
)
def create_table(
    table: Annotated[str, typer.Option(help="Table name, e.g. llamaws-<deployment>.")],
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="DynamoDB endpoint (a local engine); default: AWS.",
            envvar="AWS_ENDPOINT_URL_DYNAMODB",
        ),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: the environment's).")
    ] = None,
) -> None:
    """Create the table with llamaws's schema (keys, handler GSI, TTL) unless it exists."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from llamaws.adapter.store.table import create_table as create

    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=region or ("us-east-1" if endpoint and not _has_region() else None),
        )
        created = create(client, table)
    except (BotoCoreError, ClientError) as exc:
        print(f"Error: cannot create table '{table}': {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    where = f" at {endpoint}" if endpoint else ""
    print(f"table '{table}'{where}: {'created' if created else 'already exists'}")


def _has_region() -> bool:
    import boto3

    return boto3.session.Session().region_name is not None
