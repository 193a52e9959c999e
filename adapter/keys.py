"""API keys and browser sessions of a deployment: format, hashing, storage, a short cache.

An **API key** is ``llamaws_<key_id>_<secret>``: ``key_id`` is 12 hex digits (48
random bits, the item's key, shown by ``llamaws keys list``), ``secret`` is 43
URL-safe characters (256 random bits from :mod:`secrets`). A **session** (the sign-in
page's cookie) is ``<key_id>.<session_id>.<secret>`` with a 64-bit id and a 256-bit
secret, stored beside the key it was signed in with, so revoking a key ends its
sessions too.

Only the SHA-256 of a whole key or session token is stored (``secret_sha256``).
A slow password hash (bcrypt, scrypt, Argon2) exists to make guessing *low-entropy*
passwords expensive; nobody can enumerate 2**256 secrets, so it would add tens of
milliseconds of Lambda CPU to every cold lookup and protect nothing. SHA-256 is
preimage resistant, so a copy of the table (a backup, a read-only role) yields no
usable key. Hashes are compared with :func:`hmac.compare_digest`. The ``key_id`` in
the token makes a lookup one ``GetItem`` (no Scan, no index).

Each container caches what it read (found or not) for ``cache_seconds`` (30 by
default, ``LLAMAWS_AUTH_CACHE_SECONDS``): a revoked key, or a session signed out on
another container, is refused by every container within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import LlamawsError
from .store.table import (
    API_KEYS_GSI1PK,
    GSI1,
    GSI1PK,
    PK,
    SK,
    TTL_ATTRIBUTE,
    api_key_gsi_key,
    api_key_key,
    session_key,
)

if TYPE_CHECKING:
    from .store.client import TableClient

__all__ = [
    "DEFAULT_CACHE_SECONDS",
    "DEFAULT_SESSION_SECONDS",
    "KEY_PREFIX",
    "ApiKey",
    "InvalidCredential",
    "KeyStore",
    "NewKey",
    "Session",
    "UnknownKey",
    "hash_token",
]

KEY_PREFIX = "llamaws_"
DEFAULT_CACHE_SECONDS = 30.0
DEFAULT_SESSION_SECONDS = 12 * 3600

_KEY_RE = re.compile(r"^llamaws_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_SESSION_RE = re.compile(r"^([0-9a-f]{12})\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")


class InvalidCredential(LlamawsError):
    """A key or session that does not authenticate (HTTP 401)."""

    status_code = 401


class UnknownKey(LlamawsError):
    """``llamaws keys revoke`` of a key id the table does not have."""

    status_code = 404


@dataclass(frozen=True)
class ApiKey:
    """A stored API key, without its secret."""

    key_id: str
    name: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApiKey:
        return cls(
            key_id=str(item["key_id"]),
            name=str(item.get("name", "")),
            created_at=str(item["created_at"]),
            revoked_at=str(item["revoked_at"]) if item.get("revoked_at") else None,
        )


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``key`` is the only copy of its secret."""

    key: str
    info: ApiKey


@dataclass(frozen=True)
class Session:
    """A browser session: ``token`` is the cookie's value."""

    token: str
    key_id: str
    session_id: str
    expires_at: int
    """Epoch seconds."""


def hash_token(token: str) -> str:
    """What is stored of a key or session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KeyStore:
    """The deployment's keys and sessions in its table, read through a short cache."""

    def __init__(
        self,
        table: TableClient,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_cached: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    # -- management (``llamaws keys``) -------------------------------------------------

    async def create(self, name: str = "") -> NewKey:
        """A new key; the returned ``key`` is never stored and cannot be shown again."""
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        info = ApiKey(key_id=key_id, name=name, created_at=_now_iso())
        item = {
            **api_key_key(key_id),
            **api_key_gsi_key(info.created_at, key_id),
            "kind": "api_key",
            "key_id": key_id,
            "name": name,
            "created_at": info.created_at,
            "secret_sha256": hash_token(token),
        }
        await self.table.put(item, payload=(), condition="attribute_not_exists(PK)")
        return NewKey(key=token, info=info)

    async def list(self) -> list[ApiKey]:
        """Every key, oldest first (one Query on GSI1; revoked keys included)."""
        items = await self.table.query(
            IndexName=GSI1,
            KeyConditionExpression=f"{GSI1PK} = :p",
            ExpressionAttributeValues={":p": {"S": API_KEYS_GSI1PK}},
        )
        return [ApiKey.from_item(item) for item in items]

    async def revoke(self, key_id: str) -> ApiKey:
        """Mark the key revoked (kept for the list) and delete its sessions."""
        from .store.client import ConditionFailed

        try:
            response = await self.table.call(
                "update_item",
                TableName=self.table.table_name,
                Key=self.table.marshal(api_key_key(key_id)),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":now": {"S": _now_iso()}},
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            raise UnknownKey(
                f"no API key '{key_id}' in table '{self.table.table_name}'",
                hint="`llamaws keys list` shows the key ids.",
            ) from None
        sessions = await self.table.query(
            KeyConditionExpression=f"{PK} = :p AND begins_with({SK}, :s)",
            ExpressionAttributeValues={":p": {"S": f"K#{key_id}"}, ":s": {"S": "SESSION#"}},
            ProjectionExpression=f"{PK}, {SK}",
        )
        await self.table.batch_delete([{PK: s[PK], SK: s[SK]} for s in sessions])
        self._cache.pop(_cache_key(api_key_key(key_id)), None)
        return ApiKey.from_item(self.table.unmarshal(response["Attributes"]))

    # -- verification (the API) --------------------------------------------------------

    async def verify_key(self, token: str) -> ApiKey:
        """The active key ``token`` is, else :class:`InvalidCredential`."""
        match = _KEY_RE.match(token)
        if match is None:
            raise InvalidCredential(
                "Invalid API key: not of the form llamaws_<id>_<secret>.",
                hint="Create one with `llamaws keys create`.",
            )
        return self._active(match.group(1), token, await self._item(api_key_key(match.group(1))))

    async def open_session(self, key: ApiKey, seconds: int = DEFAULT_SESSION_SECONDS) -> Session:
        """A session for ``key`` (already verified) that expires after ``seconds``."""
        session_id = secrets.token_hex(8)
        token = f"{key.key_id}.{session_id}.{secrets.token_urlsafe(32)}"
        expires_at = int(time.time()) + seconds
        item = {
            **session_key(key.key_id, session_id),
            "kind": "session",
            "key_id": key.key_id,
            "secret_sha256": hash_token(token),
            "created_at": _now_iso(),
            TTL_ATTRIBUTE: expires_at,
        }
        await self.table.put(item, payload=(), condition="attribute_not_exists(PK)")
        return Session(token, key.key_id, session_id, expires_at)

    async def verify_session(self, token: str) -> ApiKey:
        """The active key session ``token`` was opened with, else :class:`InvalidCredential`."""
        match = _SESSION_RE.match(token)
        if match is None:
            raise InvalidCredential("Invalid session cookie.")
        key_id, session_id = match.group(1), match.group(2)
        session, key = await asyncio.gather(
            self._item(session_key(key_id, session_id)), self._item(api_key_key(key_id))
        )
        if (
            session is None
            or not hmac.compare_digest(str(session.get("secret_sha256", "")), hash_token(token))
            or int(session.get(TTL_ATTRIBUTE, 0)) <= time.time()
        ):
            raise InvalidCredential("The session has expired or was signed out.")
        if key is None:
            raise InvalidCredential("The session's API key no longer exists.")
        info = ApiKey.from_item(key)
        if not info.active:
            raise InvalidCredential(f"The session's API key {key_id} was revoked.")
        return info

    async def close_session(self, token: str) -> None:
        """Delete session ``token`` (sign-out); nothing when it is not a session token."""
        match = _SESSION_RE.match(token)
        if match is None:
            return
        key = session_key(match.group(1), match.group(2))
        self._cache.pop(_cache_key(key), None)
        await self.table.call(
            "delete_item", TableName=self.table.table_name, Key=self.table.marshal(key)
        )

    def _active(self, key_id: str, token: str, item: dict[str, Any] | None) -> ApiKey:
        if item is None or not hmac.compare_digest(
            str(item.get("secret_sha256", "")), hash_token(token)
        ):
            raise InvalidCredential(
                "Invalid API key: unknown, or its secret does not match.",
                hint="`llamaws keys list` shows the keys of this deployment.",
            )
        info = ApiKey.from_item(item)
        if not info.active:
            raise InvalidCredential(
                f"API key {key_id} was revoked at {info.revoked_at}.",
                hint="Create a new one with `llamaws keys create`.",
            )
        return info

    async def _item(self, key: dict[str, str]) -> dict[str, Any] | None:
        """The item at ``key``, from the cache when read less than ``cache_seconds`` ago."""
        now = self._clock()
        cache_key = _cache_key(key)
        hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        item = await self.table.get(key)
        if self.cache_seconds > 0:
            if len(self._cache) >= self.max_cached:
                self._evict(now)
            self._cache[cache_key] = (now + self.cache_seconds, item)
        return item

    def _evict(self, now: float) -> None:
        for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
            del self._cache[stale]
        while len(self._cache) >= self.max_cached:
            del self._cache[next(iter(self._cache))]  # the oldest entry


def _cache_key(key: dict[str, str]) -> tuple[str, str]:
    return key[PK], key[SK]
