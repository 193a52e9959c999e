"""``llamaws tokens``: list, describe, complete, fail and keep alive the waits of runs.

Works against the local emulator (default ``http://127.0.0.1:4501``) or a deployed
URL (``--url``, ``$LLAMAWS_URL``); a URL without ``/deployments/<name>`` is resolved
through its root redirect. ``--api-key`` (``$LLAMAWS_API_KEY``) is sent as a bearer
token for deployments with key auth (the token routes themselves need none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urljoin, urlsplit

import typer

__all__ = ["app"]

app = typer.Typer(
    name="tokens",
    help="Complete, fail or keep alive the waits of runs (their wait tokens).",
    no_args_is_help=True,
)

DEFAULT_URL = "http://127.0.0.1:4501"

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="LLAMAWS_URL",
        help="The deployment (http://host/deployments/<name>) or the server (its root "
        "redirects to the deployment).",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="LLAMAWS_API_KEY", help="Bearer key, for deployments with auth."
    ),
]
Token = Annotated[str, typer.Argument(help="The wait token (see `llamaws tokens list`).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list", epilog="Example:\n\n  $ llamaws tokens list HANDLER_ID")
def list_waits(
    handler_id: Annotated[str, typer.Argument(help="The run's handler id.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """The open waits of a run: token, waiter, expected events, deadlines (tab-separated)."""
    waits = _call("GET", f"/handlers/{handler_id}/waits", url, api_key)["waits"]
    if as_json:
        print(json.dumps({"waits": waits}, indent=2))
        return
    if not waits:
        print(f"handler {handler_id} has no open wait", file=sys.stderr)
    for wait in waits:
        print(
            "\t".join(
                [
                    wait["token"],
                    f"waiter={wait['waiter_id']}",
                    f"expects={','.join(wait['expected_events'])}",
                    f"expires={wait['expires_at'] or 'never'}",
                    f"heartbeat_by={wait['heartbeat_expires_at'] or '-'}",
                ]
            )
        )


@app.command(epilog="Example:\n\n  $ llamaws tokens describe TOKEN")
def describe(
    token: Token, url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """The wait of a token, any status (JSON; --json is accepted for symmetry)."""
    print(json.dumps(_call("GET", f"/tokens/{token}", url, api_key), indent=2))


@app.command(
    epilog="Example:\n\n  $ llamaws tokens success TOKEN "
    '--event-json \'{"type": "Approved", "value": {}}\''
)
def success(
    token: Token,
    event_json: Annotated[
        str | None,
        typer.Option("--event-json", help='The event: \'{"type": "Approved", "value": {...}}\'.'),
    ] = None,
    event_file: Annotated[
        Path | None,
        typer.Option("--event-file", help="A file holding the event JSON ('-': stdin)."),
    ] = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Complete the wait with its event (delivered like POST /events)."""
    event = _event(event_json, event_file)
    _summary(_call("POST", f"/tokens/{token}/success", url, api_key, {"event": event}))


@app.command(
    epilog="Example:\n\n  $ llamaws tokens failure TOKEN --error Rejected --cause 'not today'"
)
def failure(
    token: Token,
    error: Annotated[str, typer.Option(help="Error name, e.g. Rejected.")] = "Failed",
    cause: Annotated[str, typer.Option(help="Why, for the workflow and the logs.")] = "",
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Fail the wait: the workflow gets a WaitFailed event (or WaitFailedError)."""
    body = {"error": error, "cause": cause}
    _summary(_call("POST", f"/tokens/{token}/failure", url, api_key, body))


@app.command(epilog="Example:\n\n  $ llamaws tokens heartbeat TOKEN")
def heartbeat(token: Token, url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Keep the wait alive: push its heartbeat deadline."""
    _summary(_call("POST", f"/tokens/{token}/heartbeat", url, api_key))


# -- helpers -----------------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _event(event_json: str | None, event_file: Path | None) -> Any:
    if (event_json is None) == (event_file is None):
        _fail("give the event with exactly one of --event-json and --event-file", code=2)
    if event_file is not None:
        try:
            text = sys.stdin.read() if str(event_file) == "-" else event_file.read_text()
        except OSError as exc:
            _fail(f"cannot read --event-file {event_file}: {exc.strerror}", code=2)
        source = f"--event-file {event_file}"
    else:
        assert event_json is not None
        text, source = event_json, "--event-json"
    try:
        return json.loads(text)
    except ValueError as exc:
        _fail(f"{source} is not JSON: {exc}", code=2)


def _summary(wait: dict[str, Any]) -> None:
    line = f"{wait['status']}: wait '{wait['waiter_id']}' of handler {wait['handler_id']}"
    if wait["status"] == "open" and wait.get("heartbeat_expires_at"):
        line += f" (heartbeat due by {wait['heartbeat_expires_at']})"
    elif wait.get("error"):
        line += (
            f" ({wait['error']}: {wait['cause']})" if wait.get("cause") else f" ({wait['error']})"
        )
    print(line)


def _call(
    method: str, path: str, url: str, api_key: str | None, body: Any = None
) -> dict[str, Any]:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(timeout=30, headers=headers) as client:
            base = _deployment_base(client, url)
            response = client.request(method, base + path, json=body)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}. Is `llamaws serve` running, or is --url right?")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        code = payload.get("code") if isinstance(payload, dict) else None
        message = str(detail or response.text.strip() or response.reason_phrase)
        _fail(f"{message} ({code})" if code else f"{message} (HTTP {response.status_code})")
    if not isinstance(payload, dict):
        _fail(f"{method} {base + path} answered {response.status_code} without a JSON object")
    return payload


def _deployment_base(client: Any, url: str) -> str:
    """``…/deployments/<name>`` of ``url``: from its path, else its root's redirect."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        _fail(f"--url {url!r} is not an http(s) URL", code=2)
    segments = [s for s in parts.path.split("/") if s]
    if "deployments" in segments[:-1]:
        index = segments.index("deployments")
        return f"{parts.scheme}://{parts.netloc}/" + "/".join(segments[: index + 2])
    root = url.rstrip("/") + "/"
    answer = client.get(root, follow_redirects=False)
    found = [
        s for s in urlsplit(urljoin(root, answer.headers.get("location", ""))).path.split("/") if s
    ]
    if len(found) >= 2 and found[0] == "deployments":
        return urljoin(root, f"/deployments/{found[1]}")
    why = f" (its root answered {answer.status_code})" if answer.status_code != 200 else ""
    _fail(f"no deployment found at {url}{why}: pass --url http://host/deployments/<name>")
