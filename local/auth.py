"""``llamaws serve --lambda`` and the deployment's auth: what to tell, what to prepare.

The function applies the configured ``auth`` as it would deployed (plain ``llamaws
serve`` stays open). At start the emulator says how to get in:

- ``key`` on a moto server it started itself (the table lives only for the session):
  it creates a key for the session and prints it once;
- ``key`` on a given endpoint: the ``llamaws keys create`` command for that table;
- ``iam``: which credentials sign (``local/sigv4.py``);
- ``none``: that the API is open.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lambda_mode import LambdaSettings

__all__ = ["announce_auth", "function_region"]


def announce_auth(
    settings: LambdaSettings, *, app_dir: Path, url: str, base_path: str, own_engine: bool
) -> str | None:
    """Print how to call the API; returns the session key when one was created."""
    region = function_region(settings)
    if settings.auth == "none":
        _say("auth = 'none': the API is open (set [tool.llamaws] auth to close it)")
        return None
    if settings.auth == "iam":
        from .sigv4 import SigV4Verifier

        access_key = SigV4Verifier.from_environment(region).access_key
        _say(
            f"auth = 'iam': sign requests with SigV4 (service 'lambda', region {region}) "
            f"with this shell's credentials (access key {access_key})"
        )
        return None
    if not own_engine:
        _say(
            f"auth = 'key': create a key with `llamaws keys create {app_dir} --endpoint-url "
            f"{settings.dynamodb_endpoint} --table {settings.table}`; send 'Authorization: "
            f"Bearer <key>', or sign in at {url}{base_path}/auth"
        )
        return None
    key = _session_key(settings, region)
    _say(f"auth = 'key': a key for this session (its table ends with it): {key}")
    _say(f"  curl -H 'Authorization: Bearer {key}' {url}{base_path}/workflows")
    _say(f"  in a browser, sign in at {url}{base_path}/auth")
    return key


def _session_key(settings: LambdaSettings, region: str) -> str:
    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient

    from .lambda_mode import ensure_resources

    ensure_resources(settings)
    table = TableClient(settings.table, endpoint_url=settings.dynamodb_endpoint, region_name=region)
    return asyncio.run(KeyStore(table).create("serve --lambda session")).key


def function_region(settings: LambdaSettings) -> str:
    """The emulated function's region (what a SigV4 credential scope must name)."""
    return (
        settings.extra_env.get("AWS_REGION")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def _say(line: str) -> None:
    print(f"llamaws: {line}", file=sys.stderr, flush=True)
