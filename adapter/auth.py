"""Auth of a deployed API: an ASGI middleware in front of every route of the app.

The deployment's ``auth`` (``[tool.llamaws] auth``, see :func:`~.config.resolve_auth`):

- ``key``: ``Authorization: Bearer llamaws_<id>_<secret>``, or the session cookie that
  the built-in sign-in page (``/deployments/<name>/auth``) sets in exchange for a key,
  so the team's UI works in a browser unchanged. Keys and sessions: :mod:`.keys`.
- ``iam``: the request was signed with SigV4 and verified in front of the function
  (the Function URL's ``AWS_IAM`` auth type in the cloud, the emulator's check in
  ``llamaws serve --lambda``); the gate only requires the caller identity that the
  verifier puts in the event (``requestContext.authorizer.iam``), so a function URL
  left open by mistake does not make the API public.
- ``none``: no gate (the container does not install it).

Open whatever the mode: the health paths, and the wait-token routes under
``/deployments/<name>/tokens/`` (the token is the credential). A refusal is 401 with
``WWW-Authenticate`` and ``{"detail": "<one line>"}``; a browser's page navigation
without credentials is sent to the sign-in page instead.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.types import ASGIApp, Receive, Scope, Send

from .config import AuthMode
from .errors import LlamawsError
from .keys import DEFAULT_SESSION_SECONDS, ApiKey, InvalidCredential, KeyStore

__all__ = ["SESSION_COOKIE", "AuthGate"]

logger = logging.getLogger("llamaws.auth")

SESSION_COOKIE = "llamaws_session"
_MAX_FORM_BYTES = 16 * 1024
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class AuthGate:
    """Refuses unauthenticated requests before they reach ``app`` (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: AuthMode,
        base_path: str,
        keys: KeyStore | None = None,
        open_paths: Collection[str] = (),
        session_seconds: int = DEFAULT_SESSION_SECONDS,
    ) -> None:
        if mode == "key" and keys is None:
            raise ValueError("auth = 'key' needs a KeyStore")
        self.app = app
        self.mode = mode
        self.keys = keys
        self.base = base_path
        self.open_paths = frozenset(open_paths)
        self.tokens_prefix = f"{base_path}/tokens/"
        self.sign_in_path = f"{base_path}/auth"
        self.sign_out_path = f"{base_path}/auth/sign-out"
        self.session_seconds = session_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self.open_paths or path.startswith(self.tokens_prefix):
            await self.app(scope, receive, send)
            return
        if self.mode == "key" and path == self.sign_in_path:
            await self._sign_in(scope, receive, send)
            return
        if self.mode == "key" and path == self.sign_out_path:
            await self._sign_out(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope)
        except InvalidCredential as exc:
            await self._refuse(scope, send, exc)
            return
        except LlamawsError as exc:  # the table could not be read: not the caller's fault
            logger.error("auth: %s", exc)
            await _json(send, exc.status_code, {"detail": f"Cannot check credentials: {exc}"})
            return
        scope["llamaws.principal"] = principal
        await self.app(scope, receive, send)

    # -- checking ----------------------------------------------------------------------

    async def _authenticate(self, scope: Scope) -> str:
        """Who is calling (``key:<id>``, ``session:<key id>``, ``iam:<arn>``), or raise."""
        if self.mode == "iam":
            return _iam_principal(scope)
        assert self.keys is not None
        headers = _headers(scope)
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidCredential(
                    "This API takes 'Authorization: Bearer <key>'.", hint=self._how()
                )
            return f"key:{(await self.keys.verify_key(token.strip())).key_id}"
        session = _cookie(headers, SESSION_COOKIE)
        if session is None:
            raise _Missing(f"Not authenticated: send 'Authorization: Bearer <key>'. {self._how()}")
        key = await self.keys.verify_session(session)
        if scope["method"] in _UNSAFE and headers.get("sec-fetch-site") in (
            "cross-site",
            "same-site",
        ):
            raise InvalidCredential("A cross-site request cannot use the session cookie.")
        return f"session:{key.key_id}"

    def _how(self) -> str:
        return (
            "Create a key with `llamaws keys create`; "
            f"in a browser, sign in at {self.sign_in_path}."
        )

    async def _refuse(self, scope: Scope, send: Send, exc: InvalidCredential) -> None:
        headers = _headers(scope)
        if self.mode == "key" and _is_navigation(scope, headers):
            target = f"{self.sign_in_path}?next={quote(_path_and_query(scope), safe='/')}"
            await _respond(send, 303, b"", [(b"location", target.encode())])
            return
        logger.info("auth: %s %s refused: %s", scope["method"], scope["path"], exc.message)
        if self.mode == "iam":
            challenge = 'AWS4-HMAC-SHA256 realm="lambda"'
        elif isinstance(exc, _Missing):
            challenge = f'Bearer realm="{self.base}"'
        else:
            challenge = f'Bearer realm="{self.base}", error="invalid_token"'
        await _json(send, 401, {"detail": str(exc)}, [(b"www-authenticate", challenge.encode())])

    # -- the sign-in page ----------------------------------------------------------------

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.keys is not None
        headers = _headers(scope)
        method = scope["method"]
        if method in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            target = self._next(query.get("next", [""])[-1])
            signed_in: ApiKey | None = None
            session = _cookie(headers, SESSION_COOKIE)
            if session is not None:
                with contextlib.suppress(InvalidCredential):
                    signed_in = await self.keys.verify_session(session)
            await self._page(send, 200, target, signed_in=signed_in)
            return
        if method != "POST":
            await _json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"GET, POST")])
            return
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            await _json(send, 403, {"detail": "Sign-in from another site is refused."})
            return
        body = await _read_body(receive, _MAX_FORM_BYTES)
        if body is None:
            await _json(send, 413, {"detail": "The sign-in form is too large."})
            return
        as_json = headers.get("content-type", "").startswith("application/json")
        try:
            fields = _form_fields(body, as_json)
        except ValueError:
            await _json(send, 400, {"detail": 'Send a form with "key", or JSON {"key": "…"}.'})
            return
        target = self._next(fields.get("next", ""))
        try:
            key = await self.keys.verify_key(fields.get("key", "").strip())
        except InvalidCredential as exc:
            challenge = f'Bearer realm="{self.base}", error="invalid_token"'
            www = [(b"www-authenticate", challenge.encode())]
            if as_json:
                await _json(send, 401, {"detail": str(exc)}, www)
            else:
                await self._page(send, 401, target, error=exc.message, extra=www)
            return
        opened = await self.keys.open_session(key, self.session_seconds)
        cookie = (
            f"{SESSION_COOKIE}={opened.token}; Path={self.base}; Max-Age={self.session_seconds}; "
            "HttpOnly; Secure; SameSite=Strict"
        )
        set_cookie = (b"set-cookie", cookie.encode())
        if as_json:
            await _json(
                send,
                200,
                {"key_id": key.key_id, "expires_at": opened.expires_at},
                [set_cookie],
            )
        else:
            await _respond(send, 303, b"", [(b"location", target.encode()), set_cookie])

    async def _sign_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.keys is not None
        if scope["method"] != "POST":
            await _json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"POST")])
            return
        session = _cookie(_headers(scope), SESSION_COOKIE)
        if session is not None:
            await self.keys.close_session(session)
        expired = (
            f"{SESSION_COOKIE}=; Path={self.base}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        )
        await _respond(
            send,
            303,
            b"",
            [(b"location", self.sign_in_path.encode()), (b"set-cookie", expired.encode())],
        )

    def _next(self, target: str) -> str:
        """Where to go after signing in: a path of this deployment, nothing else."""
        if (
            (target == self.base or target.startswith(f"{self.base}/"))
            and "//" not in target
            and "\\" not in target
            and not any(ord(c) < 0x21 for c in target)
        ):
            return target
        return f"{self.base}/"

    async def _page(
        self,
        send: Send,
        status: int,
        target: str,
        *,
        signed_in: ApiKey | None = None,
        error: str | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        page = _PAGE.format(
            title=html.escape(self.base),
            action=html.escape(self.sign_in_path),
            sign_out=html.escape(self.sign_out_path),
            next=html.escape(target),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            state=(
                f'<p id="signed-in">Signed in with key <code>{html.escape(signed_in.key_id)}'
                f'</code>. <a href="{html.escape(target)}">Continue</a></p>'
                if signed_in is not None
                else ""
            ),
        )
        headers = [(b"content-type", b"text/html; charset=utf-8"), *(extra or [])]
        await _respond(send, status, page.encode(), headers)


class _Missing(InvalidCredential):
    """No credentials at all (RFC 6750: the challenge carries no error code)."""


def _iam_principal(scope: Scope) -> str:
    """The caller identity the SigV4 verifier in front of the function put in the event."""
    event = scope.get("aws.event") or {}
    context = event.get("requestContext") or {}
    iam = (context.get("authorizer") or {}).get("iam") or {}  # Function URL, HTTP API
    arn = iam.get("userArn") or (context.get("identity") or {}).get("userArn")  # REST API
    if not arn:
        raise _Missing(
            "This deployment uses auth = 'iam': sign requests with SigV4 (service 'lambda') "
            "and send them to the function URL, whose AWS_IAM auth type verifies them."
        )
    return f"iam:{arn}"


# -- small ASGI helpers --------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (repeated ones joined as HTTP allows)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in joined:
            value = f"{joined[name]}{'; ' if name == 'cookie' else ', '}{value}"
        joined[name] = value
    return joined


def _cookie(headers: dict[str, str], name: str) -> str | None:
    """The value of cookie ``name`` (the last one wins), tolerant of other cookies' syntax."""
    found: str | None = None
    for part in headers.get("cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            found = value.strip('"')
    return found


def _is_navigation(scope: Scope, headers: dict[str, str]) -> bool:
    """A browser loading a page (not a script's fetch): worth a redirect to sign in."""
    return (
        scope["method"] in ("GET", "HEAD")
        and headers.get("sec-fetch-mode") == "navigate"
        and "text/html" in headers.get("accept", "")
    )


def _path_and_query(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope['path']}?{query}" if query else str(scope["path"])


def _form_fields(body: bytes, as_json: bool) -> dict[str, str]:
    if as_json:
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {k: v for k, v in data.items() if isinstance(v, str)}
    parsed = parse_qs(body.decode("utf-8", errors="strict"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    await _respond(send, status, body, [(b"content-type", b"application/json"), *(headers or [])])


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Sign in: {title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.3rem}} label{{display:block;margin:1rem 0 .3rem}}
input[type=password]{{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1.2rem;font:inherit}} .error{{color:#b00020}}
small{{color:#666}}
</style></head><body>
<h1>Sign in to <code>{title}</code></h1>
{state}{error}
<form method="post" action="{action}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required
 placeholder="llamaws_…" autofocus>
<input type="hidden" name="next" value="{next}">
<button id="sign-in" type="submit">Sign in</button>
</form>
<form method="post" action="{sign_out}"><button id="sign-out" type="submit">Sign out</button></form>
<p><small>The key is exchanged for a session cookie (HttpOnly, SameSite=Strict) that this
browser sends with the API's requests. Keys: <code>llamaws keys create</code>.</small></p>
</body></html>
"""
