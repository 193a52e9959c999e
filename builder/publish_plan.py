"""Plan a UI publish: the build's manifest against the live state in the bucket.

A pure function of values (no S3 here), so the plan can be printed
(``llamaws ui publish --dry-run``) and tested with plain data:

- a file is uploaded when the key holds other content (or other headers), or
  nothing; else it is unchanged;
- uploads run in three phases: content-hashed files (new names: nothing served
  changes), then other non-HTML files, then HTML last, root ``index.html`` at the
  very end: a page never references an asset that is not there yet;
- a file the new build no longer has is *retired*: it stays in the bucket for the
  grace period, so pages opened on the previous version keep loading it, and is
  deleted by the first publish after that (the sweep);
- one CloudFront invalidation lists the un-hashed URLs whose content changes or
  goes (hashed ones never change: new content, new name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any
from urllib.parse import quote

from llamaws.adapter.errors import LlamawsError

from . import static_rules
from .manifest import FileEntry, Manifest

__all__ = [
    "DEFAULT_GRACE",
    "MAX_INVALIDATION_PATHS",
    "LiveState",
    "Phase",
    "PublishPlan",
    "Retired",
    "Upload",
    "invalidation_paths",
    "plan_publish",
]

DEFAULT_GRACE = timedelta(hours=1)
"""How long a file the live version no longer references stays in the bucket."""

MAX_INVALIDATION_PATHS = 15
"""More changed paths than this are invalidated as one wildcard (``<base>/*``)."""

STATE_FORMAT = 1


@dataclass(frozen=True)
class Retired:
    """A file no version references any more, kept until ``since`` + the grace."""

    sha256: str
    since: datetime


@dataclass(frozen=True)
class LiveState:
    """What the bucket serves: the live manifest, plus the retired files still kept."""

    files: Mapping[str, FileEntry] = field(default_factory=dict)
    retired: Mapping[str, Retired] = field(default_factory=dict)
    build_id: str | None = None
    published_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "build_id": self.build_id,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "files": {path: self.files[path].to_json() for path in sorted(self.files)},
            "retired": {
                path: {"sha256": item.sha256, "since": item.since.isoformat()}
                for path, item in sorted(self.retired.items())
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveState:
        if data.get("format") != STATE_FORMAT:
            raise LlamawsError(
                f"the bucket's live UI manifest has format {data.get('format')!r}, "
                f"this llamaws reads {STATE_FORMAT}.",
                hint="Publish with the llamaws version that wrote it, or a newer one.",
            )
        published = data.get("published_at")
        return cls(
            files={path: FileEntry.from_json(entry) for path, entry in data["files"].items()},
            retired={
                path: Retired(str(item["sha256"]), datetime.fromisoformat(item["since"]))
                for path, item in data.get("retired", {}).items()
            },
            build_id=data.get("build_id"),
            published_at=datetime.fromisoformat(published) if published else None,
        )


class Phase(IntEnum):
    """Upload order: nothing a served page references is missing at any moment."""

    HASHED = 0
    """Content-hashed files: new names, so nothing served changes."""
    OTHER = 1
    """Un-hashed non-HTML files (``robots.txt``, ``favicon.svg``): replaced in place."""
    HTML = 2
    """Pages last: once one is there, everything it references is too."""


@dataclass(frozen=True)
class Upload:
    """One file to put, and whether it replaces other content at its key."""

    path: str
    entry: FileEntry
    replaces: bool

    @property
    def phase(self) -> Phase:
        if self.entry.immutable:
            return Phase.HASHED
        return Phase.HTML if self.entry.content_type.startswith("text/html") else Phase.OTHER


@dataclass(frozen=True)
class PublishPlan:
    """Everything a publish will do, in order; a value (printable, comparable)."""

    build_id: str
    uploads: tuple[Upload, ...]
    unchanged: tuple[str, ...]
    retire: tuple[str, ...]
    """Files the new version drops: kept for the grace period, deleted later."""
    deletes: tuple[str, ...]
    """Files retired at least a grace period ago: deleted after the switch."""
    invalidations: tuple[str, ...]
    """URL paths for the one CloudFront invalidation."""
    state: LiveState
    """The live state once the publish (switch and sweep) is done."""
    switch_state: LiveState
    """The state written at the switch: the files to delete are still listed as
    retired until they are gone, so an interrupted sweep is finished next time."""
    spa_routes_changed: bool
    """The build's extension-less files / directory indexes changed: the CloudFront
    function embeds them, so it needs redeploying (``llamaws deploy``)."""
    previous_build_id: str | None = None

    @property
    def bytes_to_upload(self) -> int:
        return sum(upload.entry.size for upload in self.uploads)

    @property
    def is_noop(self) -> bool:
        return not (self.uploads or self.retire or self.deletes)


def invalidation_paths(base_path: str, paths: list[str]) -> tuple[str, ...]:
    """The CloudFront paths for ``paths`` under ``base_path`` (one wildcard when many)."""
    if not paths:
        return ()
    prefix = base_path.rstrip("/")
    if len(paths) > MAX_INVALIDATION_PATHS:
        return (f"{prefix}/*",)
    return tuple(sorted(f"{prefix}/{quote(path, safe='/~')}" for path in paths))


def _order(upload: Upload) -> tuple[int, bool, str]:
    return (upload.phase, upload.path == static_rules.INDEX, upload.path)


def plan_publish(
    build: Manifest,
    live: LiveState,
    *,
    base_path: str,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    observed: Mapping[str, str | None] | None = None,
    orphans: Mapping[str, str] | None = None,
) -> PublishPlan:
    """Plan publishing ``build`` over ``live``.

    ``observed`` maps paths to the SHA-256 of the object their key holds right now
    (``None``: no object), for keys whose content the state alone cannot vouch for
    (un-hashed files, replaced in place). ``orphans`` are files an interrupted
    publish uploaded but no state references (path → SHA-256): retired like the rest.
    """
    observed = observed or {}
    orphans = orphans or {}
    uploads: list[Upload] = []
    unchanged: list[str] = []
    for path, entry in build.files.items():
        before = live.files.get(path)
        if path in observed:
            current = observed[path]
        elif before is not None:
            current = before.sha256
        elif path in live.retired:
            current = live.retired[path].sha256
        else:
            current = None
        same_headers = before is None or (before.content_type, before.cache_control) == (
            entry.content_type,
            entry.cache_control,
        )
        if current == entry.sha256 and same_headers:
            unchanged.append(path)
        else:
            uploads.append(Upload(path, entry, replaces=current is not None))

    retired: dict[str, Retired] = {}
    deletes: list[str] = []
    for path, item in live.retired.items():
        if path in build.files:
            continue  # referenced again (e.g. a rollback): live, not retired
        if item.since + grace <= now:
            deletes.append(path)
        else:
            retired[path] = item
    retire = [path for path in live.files if path not in build.files]
    retire += [
        path
        for path in orphans
        if path not in build.files and path not in live.files and path not in live.retired
    ]
    for path in retire:
        sha = live.files[path].sha256 if path in live.files else orphans[path]
        retired[path] = Retired(sha, now)

    changed_urls = [u.path for u in uploads if u.replaces and not u.entry.immutable]
    changed_urls += [path for path in deletes if not static_rules.is_hashed(path)]
    state = LiveState(
        files=dict(build.files),
        retired=dict(sorted(retired.items())),
        build_id=build.build_id,
        published_at=now,
    )
    return PublishPlan(
        build_id=build.build_id,
        uploads=tuple(sorted(uploads, key=_order)),
        unchanged=tuple(sorted(unchanged)),
        retire=tuple(sorted(retire)),
        deletes=tuple(sorted(deletes)),
        invalidations=invalidation_paths(base_path, changed_urls),
        state=state,
        switch_state=replace(
            state, retired={**state.retired, **{path: live.retired[path] for path in deletes}}
        ),
        spa_routes_changed=bool(live.files)
        and static_rules.function_routes(build.files) != static_rules.function_routes(live.files),
        previous_build_id=live.build_id,
    )
