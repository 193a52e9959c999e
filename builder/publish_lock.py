"""One publisher at a time per UI: a lease object in the bucket, written conditionally.

The lock is a small JSON object next to the live manifest. It is taken with S3
conditional writes: ``If-None-Match: *`` when there is none, ``If-Match: <etag>``
to take over one that was released or whose lease ran out; exactly one of several
racing publishers wins. The holder renews the lease from a background thread
(every third of its length) and records the uploads it is about to make, so a
publisher that takes over from a crashed one learns which objects it may have left
behind (and retires them). Only ``PutObject`` / ``GetObject`` are used: S3 has
supported ``If-None-Match`` and ``If-Match`` on ``PutObject`` since 2024.

A lease measures wall-clock time across machines: clocks must agree to well
within the lease (60 s by default).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from llamaws.adapter.errors import LlamawsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_LOCK_TTL",
    "DEFAULT_LOCK_WAIT",
    "LockRecord",
    "PublishBusy",
    "PublishConflict",
    "PublishLock",
    "error_code",
]

logger = logging.getLogger("llamaws.publish")

DEFAULT_LOCK_TTL = 60.0
"""Seconds a lease lasts without renewal: how long a crashed publisher blocks others."""
DEFAULT_LOCK_WAIT = 90.0
"""Seconds a publisher waits for another one (or its lease) to end before giving up."""


class PublishBusy(LlamawsError):
    """Another publish of the same UI holds the lock."""

    status_code = 409


class PublishConflict(LlamawsError):
    """The lock or the live manifest changed under a running publish."""

    status_code = 409


def error_code(exc: ClientError) -> str:
    """The S3 error code of ``exc`` (``PreconditionFailed``, ``NoSuchKey``, …)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class LockRecord:
    """The lock object's content."""

    owner: str
    expires_at: datetime
    released: bool = False
    pending: Mapping[str, str] = field(default_factory=dict)
    """Uploads the holder is making (path → SHA-256), until it switches the manifest."""

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "expires_at": self.expires_at.isoformat(),
                "released": self.released,
                "pending": dict(self.pending),
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LockRecord:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            owner=str(data["owner"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            released=bool(data.get("released")),
            pending={str(k): str(v) for k, v in data.get("pending", {}).items()},
        )


def _now() -> datetime:
    return datetime.now(UTC)


class PublishLock:
    """The lease on ``s3://bucket/key``; use :meth:`held`."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        ttl: float = DEFAULT_LOCK_TTL,
        wait: float = DEFAULT_LOCK_WAIT,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.ttl, self.wait = ttl, wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._expires_at = _now()
        self._pending: Mapping[str, str] = {}
        self._lost = False
        self._guard = threading.Lock()

    # -- the record ------------------------------------------------------------

    def _read(self) -> tuple[LockRecord, str] | None:
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return LockRecord.from_bytes(got["Body"].read()), got["ETag"]

    def _write(self, record: LockRecord, *, if_match: str | None) -> str:
        """Put ``record`` conditionally; returns the new ETag. ``PreconditionFailed``
        (someone else wrote first) propagates as a ``ClientError``."""
        extra: dict[str, str] = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        put = self.s3.put_object(
            Bucket=self.bucket,
            Key=self.key,
            Body=record.to_bytes(),
            ContentType="application/json",
            CacheControl="no-store",
            **extra,  # type: ignore[arg-type]
        )
        return put["ETag"]

    def _record(self, *, released: bool = False) -> LockRecord:
        expires = _now() + timedelta(seconds=self.ttl)
        return LockRecord(self.owner, expires, released, {} if released else self._pending)

    # -- acquire / renew / release ---------------------------------------------

    def acquire(self) -> dict[str, str]:
        """Take the lock, waiting up to ``wait`` seconds for a holder to finish.

        Returns the uploads a previous holder recorded and never finished (its lease
        ran out without a release): objects that may be in the bucket unreferenced.
        """
        deadline = time.monotonic() + self.wait
        while True:
            found = self._read()
            record = self._record()
            try:
                if found is None:
                    self._etag = self._write(record, if_match=None)
                    self._expires_at = record.expires_at
                    return {}
                previous, etag = found
                if previous.released or previous.expires_at <= _now():
                    self._etag = self._write(record, if_match=etag)
                    self._expires_at = record.expires_at
                    if not previous.released:
                        logger.warning("took over the expired publish lock of %s", previous.owner)
                    return {} if previous.released else dict(previous.pending)
            except ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                continue  # another publisher got there first: look again
            if time.monotonic() >= deadline:
                left = max(0.0, (previous.expires_at - _now()).total_seconds())
                raise PublishBusy(
                    f"another publish of this UI is running ({previous.owner}; its lease "
                    f"ends in {left:.0f} s unless renewed).",
                    hint="Run the publish again once it has finished.",
                )
            time.sleep(min(1.0, self.ttl / 4))

    def renew(self, pending: Mapping[str, str] | None = None) -> None:
        """Extend the lease (and record ``pending`` uploads); :class:`PublishConflict`
        when another publisher has taken the lock."""
        with self._guard:
            if self._lost:
                raise self._conflict()
            if pending is not None:
                self._pending = dict(pending)
            record = self._record()
            try:
                self._etag = self._write(record, if_match=self._etag)
            except ClientError as exc:
                if error_code(exc) in ("PreconditionFailed", "NoSuchKey"):
                    self._lost = True
                    raise self._conflict() from None
                raise
            self._expires_at = record.expires_at

    def check(self) -> None:
        """Raise :class:`PublishConflict` unless the lease is still surely ours."""
        with self._guard:
            if self._lost or self._expires_at <= _now():
                self._lost = True
                raise self._conflict()

    def release(self) -> None:
        """Mark the lock released (best effort: an unreachable bucket lets it expire)."""
        with self._guard:
            if self._lost or self._etag is None:
                return
            try:
                self._write(self._record(released=True), if_match=self._etag)
            except (BotoCoreError, ClientError) as exc:
                logger.warning("could not release the publish lock (it expires): %s", exc)
            self._etag = None

    def _conflict(self) -> PublishConflict:
        return PublishConflict(
            "another publish took over this UI's lock while this one was running.",
            hint="Run the publish again: it compares with what is live now.",
        )

    @contextmanager
    def held(self) -> Iterator[dict[str, str]]:
        """Hold the lock (renewed in the background) for the block; yields the orphans
        of :meth:`acquire`."""
        orphans = self.acquire()
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self.renew()
                except PublishConflict:
                    return
                except (BotoCoreError, ClientError) as exc:
                    logger.warning("could not renew the publish lock: %s", exc)

        thread = threading.Thread(target=heartbeat, name="publish-lock", daemon=True)
        thread.start()
        try:
            yield orphans
        finally:
            stop.set()
            thread.join()
            self.release()
