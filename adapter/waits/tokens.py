"""Wait tokens: their format, their record, and the errors of the token API.

A token is ``wt1.<handler>.<secret>``: the handler id (base64url) says where the
record lives; the secret is 24 random bytes (192 bits) plus a 4-byte check, so a
mistyped or truncated token is refused (400) without a lookup. The server never
trusts what the token says: it looks the record up by handler id *and* secret,
and an altered handler part simply finds nothing (404).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import LlamawsError

__all__ = [
    "CLOSED_STATUSES",
    "InvalidEvent",
    "InvalidToken",
    "TaskAlreadyCompleted",
    "TaskDoesNotExist",
    "TaskTimedOut",
    "TokenRecord",
    "WaitKind",
    "WaitStatus",
    "WaitTokenError",
    "closed_error",
    "iso_ms",
    "new_token",
    "parse_token",
]

PREFIX = "wt1"
_RANDOM_BYTES = 24
_CHECK_BYTES = 4
MAX_TOKEN_LENGTH = 512
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")

WaitKind = Literal["event", "input"]
"""``event``: a step awaits ``ctx.wait_for_event``; ``input``: a step returned an
``InputRequiredEvent``."""
WaitStatus = Literal["open", "completed", "failed", "timed_out", "cancelled"]
CLOSED_STATUSES: tuple[WaitStatus, ...] = ("completed", "failed", "timed_out", "cancelled")


# -- errors ------------------------------------------------------------------------------


class WaitTokenError(LlamawsError):
    """An error of the token API: an HTTP status and a Step-Functions-style ``code``."""

    code = "WaitTokenError"

    def payload(self) -> dict[str, str]:
        return {"detail": str(self), "code": self.code}


class InvalidToken(WaitTokenError):
    status_code = 400
    code = "InvalidToken"


class InvalidEvent(WaitTokenError):
    status_code = 400
    code = "InvalidEvent"


class TaskDoesNotExist(WaitTokenError):
    status_code = 404
    code = "TaskDoesNotExist"


class TaskAlreadyCompleted(WaitTokenError):
    status_code = 409
    code = "TaskAlreadyCompleted"


class TaskTimedOut(WaitTokenError):
    status_code = 410
    code = "TaskTimedOut"


class DeliveryFailed(WaitTokenError):
    status_code = 500
    code = "DeliveryFailed"


# -- format ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Decode canonical unpadded base64url (one spelling per value, or ValueError)."""
    if not _B64.match(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _check(handler_id: str, random: bytes) -> bytes:
    digest = hashlib.sha256(b"llamaws-wait-token\0" + handler_id.encode() + b"\0" + random)
    return digest.digest()[:_CHECK_BYTES]


def new_token(handler_id: str) -> tuple[str, str]:
    """A fresh token for a wait of ``handler_id``: ``(token, secret)``."""
    random = secrets.token_bytes(_RANDOM_BYTES)
    secret = _b64(random + _check(handler_id, random))
    return f"{PREFIX}.{_b64(handler_id.encode())}.{secret}", secret


def parse_token(token: str) -> tuple[str, str]:
    """``(handler_id, secret)`` of a well-formed token; :class:`InvalidToken` otherwise."""
    problem = "it is not a llamaws wait token"
    if len(token) <= MAX_TOKEN_LENGTH:
        prefix, _, rest = token.partition(".")
        encoded_handler, _, secret = rest.partition(".")
        if prefix == PREFIX and encoded_handler and secret:
            try:
                handler_id = _unb64(encoded_handler).decode()
                raw = _unb64(secret)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                problem = "it is not base64url"
            else:
                if len(raw) == _RANDOM_BYTES + _CHECK_BYTES and secrets.compare_digest(
                    raw[_RANDOM_BYTES:], _check(handler_id, raw[:_RANDOM_BYTES])
                ):
                    return handler_id, secret
                problem = "its check digits do not match (mistyped or truncated?)"
    raise InvalidToken(
        f"Invalid wait token: {problem}.",
        hint="Use the token exactly as announced (WaitTokenIssued) or listed at …/waits.",
    )


# -- the record ----------------------------------------------------------------------------


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 (UTC), ``None`` kept."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class TokenRecord:
    """One wait and its token, as every store keeps it (times in epoch milliseconds)."""

    token: str
    handler_id: str
    run_id: str
    deployment: str
    workflow_name: str
    waiter_id: str
    kind: WaitKind
    step: str
    """The step that waits (``event``) or returned the ``InputRequiredEvent`` (``input``)."""
    expected_events: tuple[str, ...]
    """Class names of the events that complete the wait."""
    created_ms: int
    timeout_ms: int | None = None
    heartbeat_seconds: float | None = None
    heartbeat_ms: int | None = None
    status: WaitStatus = "open"
    ended_ms: int | None = None
    ended_by: str | None = None
    """``success`` (token call), ``event`` (``POST /events``), ``run`` (the run itself),
    ``failure``, ``timeout``, ``heartbeat_timeout``, ``run_ended``."""
    error: str | None = None
    cause: str | None = None

    @property
    def secret(self) -> str:
        return self.token.rsplit(".", 1)[1]

    @property
    def due_ms(self) -> int | None:
        """The earliest deadline (``None``: none)."""
        deadlines = [d for d in (self.timeout_ms, self.heartbeat_ms) if d is not None]
        return min(deadlines) if deadlines else None

    def live(self, now_ms: int) -> bool:
        """Open and before both deadlines."""
        due = self.due_ms
        return self.status == "open" and (due is None or now_ms < due)

    def closed(
        self,
        status: WaitStatus,
        now_ms: int,
        ended_by: str,
        error: str | None = None,
        cause: str | None = None,
    ) -> TokenRecord:
        return replace(
            self, status=status, ended_ms=now_ms, ended_by=ended_by, error=error, cause=cause
        )

    def wait(self) -> dict[str, Any]:
        """The item of ``GET …/handlers/<id>/waits``."""
        return {
            "token": self.token,
            "waiter_id": self.waiter_id,
            "expected_events": list(self.expected_events),
            "expires_at": iso_ms(self.timeout_ms),
            "heartbeat_expires_at": iso_ms(self.heartbeat_ms),
        }

    def describe(self) -> dict[str, Any]:
        """``GET …/tokens/<token>``."""
        return {
            **self.wait(),
            "handler_id": self.handler_id,
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "kind": self.kind,
            "status": self.status,
            "heartbeat_seconds": self.heartbeat_seconds,
            "created_at": iso_ms(self.created_ms),
            "ended_at": iso_ms(self.ended_ms),
            "ended_by": self.ended_by,
            "error": self.error,
            "cause": self.cause,
        }


def closed_error(record: TokenRecord | None) -> WaitTokenError:
    """What a call on a token that is no longer open gets."""
    if record is None:
        return TaskDoesNotExist("Wait token not found: no such wait (or it was cleaned up)")
    what = f"The wait {record.waiter_id!r} of handler {record.handler_id}"
    if record.status == "completed":
        return TaskAlreadyCompleted(f"{what} was already completed ({record.ended_by})")
    if record.status == "failed":
        return TaskAlreadyCompleted(f"{what} was already failed: {record.error}")
    if record.status == "cancelled":
        return TaskTimedOut(f"{what} ended with its run")
    reason = f"{record.error}: {record.cause}" if record.cause else (record.error or "timed out")
    return TaskTimedOut(f"{what} timed out ({reason})")
