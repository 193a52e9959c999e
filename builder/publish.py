"""Publish a built UI to S3 (and invalidate CloudFront once): plan, execute, sweep.

1. The build's manifest (:func:`builder.manifest.scan_build`) is compared with the
   live state stored in the bucket (:func:`builder.publish_plan.plan_publish`); the
   un-hashed keys, replaced in place, are checked with ``HEAD`` (their
   ``x-amz-meta-sha256``) rather than trusted.
2. Under the bucket's publish lock (:mod:`builder.publish_lock`), new or changed
   files are uploaded with their ``Content-Type``, ``Cache-Control`` and SHA-256
   (checked by S3), hashed files first and HTML last; then the live manifest is
   switched with a conditional write (``If-Match`` the version the plan was made
   against), so a plan that went stale is refused instead of applied.
3. Files retired more than the grace period ago are deleted (the sweep), and one
   CloudFront invalidation covers the un-hashed URLs that changed.

An interrupted publish leaves the previous version serving (its HTML and manifest
are untouched until the end); running it again completes it.

Keys: a file ``assets/x.js`` lives at ``<prefix>/assets/x.js``; the prefix defaults
to the UI's URL path without its leading slash (``deployments/<name>/ui``), so a
CloudFront behaviour for ``/deployments/<name>/ui/*`` maps URLs onto keys as they
are. The live manifest and the lock sit under ``.llamaws/publish/<prefix>/``, out
of that behaviour's reach.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import LlamawsError

from .manifest import Manifest, scan_build
from .publish_lock import (
    DEFAULT_LOCK_TTL,
    DEFAULT_LOCK_WAIT,
    PublishBusy,
    PublishConflict,
    PublishLock,
    error_code,
)
from .publish_plan import DEFAULT_GRACE, LiveState, Phase, PublishPlan, Upload, plan_publish
from .ui_build import ui_base_path

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_GRACE",
    "LiveSnapshot",
    "PublishBusy",
    "PublishConflict",
    "PublishError",
    "PublishProgress",
    "PublishResult",
    "PublishTarget",
    "aws_clients",
    "execute",
    "plan",
    "publish",
    "read_live_state",
]

META_PREFIX = ".llamaws/publish"
SHA256_METADATA = "sha256"


class PublishError(LlamawsError):
    """S3 or CloudFront refused or failed a step of the publish."""


@dataclass(frozen=True)
class PublishTarget:
    """Where a UI goes: bucket and key prefix, its URL path, the distribution in front."""

    bucket: str
    prefix: str
    """Key prefix of the UI's files, without leading or trailing ``/`` (may be empty)."""
    base_path: str
    """URL path of the UI (``/deployments/<name>/ui``): invalidation paths start here."""
    distribution_id: str | None = None

    @classmethod
    def for_deployment(
        cls,
        deployment: Deployment,
        bucket: str,
        *,
        prefix: str | None = None,
        distribution_id: str | None = None,
    ) -> PublishTarget:
        """The target of ``deployment``'s UI: keys under ``deployments/<name>/ui``."""
        base = ui_base_path(deployment)
        chosen = base if prefix is None else prefix
        return cls(bucket, chosen.strip("/"), base, distribution_id)

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    @property
    def meta_prefix(self) -> str:
        return f"{META_PREFIX}/{self.prefix}" if self.prefix else META_PREFIX

    @property
    def state_key(self) -> str:
        """The live manifest (and retired files) of this UI."""
        return f"{self.meta_prefix}/manifest.json"

    @property
    def lock_key(self) -> str:
        return f"{self.meta_prefix}/lock.json"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class PublishProgress(Protocol):
    """What a publish reports while it runs (called from worker threads too)."""

    def start(self, files: int, total_bytes: int) -> None:
        """Uploads begin: ``files`` files, ``total_bytes`` bytes in all."""

    def uploaded(self, path: str, size: int) -> None:
        """One file is in the bucket."""

    def step(self, text: str) -> None:
        """A step other than uploading (switch, sweep, invalidation)."""


@dataclass(frozen=True)
class PublishResult:
    """What a publish did (or, with ``dry_run``, would do)."""

    plan: PublishPlan
    target: PublishTarget
    dry_run: bool = False
    invalidation_id: str | None = None

    @property
    def invalidated(self) -> tuple[str, ...]:
        return self.plan.invalidations if self.target.distribution_id else ()

    def to_json(self) -> dict[str, Any]:
        """``llamaws ui publish --json``: counts first, then the paths."""
        plan = self.plan
        return {
            "uploaded": len(plan.uploads),
            "deleted": len(plan.deletes),
            "unchanged": len(plan.unchanged),
            "bytes_uploaded": plan.bytes_to_upload,
            "invalidated": list(self.invalidated),
            "retired": len(plan.retire),
            "dry_run": self.dry_run,
            "build_id": plan.build_id,
            "previous_build_id": plan.previous_build_id,
            "invalidation_id": self.invalidation_id,
            "spa_routes_changed": plan.spa_routes_changed,
            "files": {
                "uploaded": [upload.path for upload in plan.uploads],
                "deleted": list(plan.deletes),
                "retired": list(plan.retire),
            },
        }


@dataclass(frozen=True)
class LiveSnapshot:
    """The live state as read, and the ETag of its object (``None``: never published)."""

    state: LiveState
    etag: str | None


def aws_clients(
    endpoint_url: str | None = None, region: str | None = None, *, workers: int = 8
) -> tuple[S3Client, CloudFrontClient]:
    """S3 and CloudFront clients (one endpoint for both, e.g. a local moto server)."""
    import boto3
    from botocore.config import Config

    if region is None and endpoint_url and boto3.session.Session().region_name is None:
        region = "us-east-1"
    config = Config(max_pool_connections=workers, retries={"mode": "standard"})
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    cloudfront = boto3.client("cloudfront", endpoint_url=endpoint_url, region_name=region)
    return s3, cloudfront


def read_live_state(s3: S3Client, target: PublishTarget) -> LiveSnapshot:
    """The live manifest of ``target`` (empty when nothing was published yet)."""
    try:
        got = s3.get_object(Bucket=target.bucket, Key=target.state_key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return LiveSnapshot(LiveState(), None)
        raise
    return LiveSnapshot(LiveState.from_json(json.loads(got["Body"].read())), got["ETag"])


def _observed_sha(s3: S3Client, target: PublishTarget, path: str) -> str | None:
    try:
        head = s3.head_object(Bucket=target.bucket, Key=target.key(path))
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("Metadata", {}).get(SHA256_METADATA, "")


def plan(
    build: Manifest,
    target: PublishTarget,
    s3: S3Client,
    *,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    orphans: dict[str, str] | None = None,
    workers: int = 8,
) -> tuple[PublishPlan, LiveSnapshot]:
    """Read the live state, check the keys replaced in place, plan (reads only)."""
    live = read_live_state(s3, target)
    orphans = orphans or {}
    checked = [path for path, entry in build.files.items()
               if not entry.immutable or path in orphans]  # fmt: skip
    with ThreadPoolExecutor(max_workers=workers) as pool:
        shas = list(pool.map(lambda path: _observed_sha(s3, target, path), checked))
    the_plan = plan_publish(
        build,
        live.state,
        base_path=target.base_path,
        now=now or datetime.now(UTC),
        grace=grace,
        observed=dict(zip(checked, shas, strict=True)),
        orphans=orphans,
    )
    return the_plan, live


def publish(
    build_dir: Path,
    target: PublishTarget,
    *,
    s3: S3Client,
    cloudfront: CloudFrontClient | None = None,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    progress: PublishProgress | None = None,
    now: datetime | None = None,
    lock_ttl: float = DEFAULT_LOCK_TTL,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    workers: int = 8,
) -> PublishResult:
    """Publish the UI built in ``build_dir`` to ``target``; see the module docstring.

    ``now`` is the time the grace period is measured against (default: the clock).
    Raises :class:`PublishBusy` when another publish holds the lock past
    ``lock_wait``, :class:`PublishConflict` when one took over during this one,
    :class:`PublishError` for S3 / CloudFront failures; in every case what was
    live stays live, and running the publish again completes it.
    """
    build = scan_build(build_dir)
    try:
        if dry_run:
            the_plan, _ = plan(build, target, s3, now=now, grace=grace, workers=workers)
            return PublishResult(the_plan, target, dry_run=True)
        lock = PublishLock(s3, target.bucket, target.lock_key, ttl=lock_ttl, wait=lock_wait)
        with lock.held() as orphans:
            the_plan, live = plan(
                build, target, s3, now=now, grace=grace, orphans=orphans, workers=workers
            )
            if the_plan.uploads:
                lock.renew(pending={u.path: u.entry.sha256 for u in the_plan.uploads})
            return execute(
                the_plan,
                live,
                build_dir,
                target,
                s3=s3,
                cloudfront=cloudfront,
                lock=lock,
                progress=progress,
                workers=workers,
            )
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(
            f"publishing to {target.url} failed: {exc}.",
            hint="Check the bucket, credentials and endpoint; what was live still is, and "
            "running the publish again completes it.",
        ) from exc


def execute(
    the_plan: PublishPlan,
    live: LiveSnapshot,
    build_dir: Path,
    target: PublishTarget,
    *,
    s3: S3Client,
    cloudfront: CloudFrontClient | None,
    lock: PublishLock,
    progress: PublishProgress | None = None,
    workers: int = 8,
) -> PublishResult:
    """Carry ``the_plan`` out (made against ``live``) while ``lock`` is held: uploads by
    phase, a check that the plan still holds before anything is replaced in place,
    the conditional switch, the sweep, the invalidation."""
    if the_plan.is_noop and live.etag is not None:
        return PublishResult(the_plan, target)  # nothing to switch, sweep or invalidate
    if progress is not None:
        progress.start(len(the_plan.uploads), the_plan.bytes_to_upload)
    for phase in Phase:
        batch = [upload for upload in the_plan.uploads if upload.phase == phase]
        if phase is Phase.OTHER:
            # From here on keys are replaced in place: make sure the plan still holds.
            lock.check()
            if read_live_state(s3, target).etag != live.etag:
                raise PublishConflict(
                    "the live UI manifest changed since this publish planned.",
                    hint="Run the publish again: it compares with what is live now.",
                )
        _upload_all(batch, build_dir, target, s3, progress, workers)

    lock.check()
    _step(progress, "switching the live manifest")
    etag = _switch(s3, target, the_plan.switch_state, if_match=live.etag)
    if the_plan.deletes:
        _step(progress, f"deleting {len(the_plan.deletes)} retired file(s)")
        _delete(s3, target, the_plan.deletes)
        _switch(s3, target, the_plan.state, if_match=etag)
    invalidation_id = None
    if target.distribution_id and the_plan.invalidations:
        if cloudfront is None:
            raise LlamawsError("a distribution id was given without a CloudFront client")
        _step(progress, f"invalidating {len(the_plan.invalidations)} path(s)")
        invalidation_id = _invalidate(cloudfront, target.distribution_id, the_plan)
    return PublishResult(the_plan, target, invalidation_id=invalidation_id)


def _step(progress: PublishProgress | None, text: str) -> None:
    if progress is not None:
        progress.step(text)


def _upload_all(
    batch: list[Upload],
    build_dir: Path,
    target: PublishTarget,
    s3: S3Client,
    progress: PublishProgress | None,
    workers: int,
) -> None:
    if not batch:
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
        futures = [pool.submit(_upload, u, build_dir, target, s3, progress) for u in batch]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:  # the first failure stops the publish
                future.cancel()
            raise


def _upload(
    upload: Upload,
    build_dir: Path,
    target: PublishTarget,
    s3: S3Client,
    progress: PublishProgress | None,
) -> None:
    body = (build_dir / upload.path).read_bytes()
    digest = hashlib.sha256(body).digest()
    if digest.hex() != upload.entry.sha256:
        raise LlamawsError(
            f"{upload.path} changed while publishing.",
            hint="Let the build finish, then publish again.",
        )
    s3.put_object(
        Bucket=target.bucket,
        Key=target.key(upload.path),
        Body=body,
        ContentType=upload.entry.content_type,
        CacheControl=upload.entry.cache_control,
        Metadata={SHA256_METADATA: upload.entry.sha256},
        ChecksumSHA256=base64.b64encode(digest).decode(),
    )
    if progress is not None:
        progress.uploaded(upload.path, upload.entry.size)


def _switch(s3: S3Client, target: PublishTarget, state: LiveState, *, if_match: str | None) -> str:
    """Write the live manifest iff it is still the version read (or still absent)."""
    condition: dict[str, str] = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
    try:
        put = s3.put_object(
            Bucket=target.bucket,
            Key=target.state_key,
            Body=json.dumps(state.to_json(), indent=1).encode(),
            ContentType="application/json",
            CacheControl="no-store",
            **condition,  # type: ignore[arg-type]
        )
    except ClientError as exc:
        if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
            raise PublishConflict(
                "another publish switched the live UI manifest first.",
                hint="Run the publish again: it compares with what is live now.",
            ) from None
        raise
    return put["ETag"]


def _delete(s3: S3Client, target: PublishTarget, paths: Iterable[str]) -> None:
    keys = [target.key(path) for path in paths]
    for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1000 keys
        chunk = keys[start : start + 1000]
        answer = s3.delete_objects(
            Bucket=target.bucket,
            Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
        )
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise PublishError(
                f"could not delete {first.get('Key')}: {first.get('Message')}.",
                hint="Running the publish again retries the sweep.",
            )


def _invalidate(cloudfront: CloudFrontClient, distribution_id: str, the_plan: PublishPlan) -> str:
    paths = list(the_plan.invalidations)
    answer = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": f"llamaws-{the_plan.build_id}-{time.time_ns()}",
        },
    )
    return answer["Invalidation"]["Id"]
