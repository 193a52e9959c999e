"""The manifest of a UI build: each file with its SHA-256, size and serving headers.

The headers come from :mod:`builder.static_rules` (the rules the emulator's preview
serves with), so a file is published with exactly the ``Content-Type`` and
``Cache-Control`` the preview gives it. The publish compares this manifest with the
live one stored in the bucket (:mod:`builder.publish_plan`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import LlamawsError

from . import static_rules

__all__ = [
    "FileEntry",
    "Manifest",
    "manifest_path",
    "read_manifest",
    "scan_build",
    "write_manifest",
]

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class FileEntry:
    """One file of a build, as it is served."""

    sha256: str
    size: int
    content_type: str
    cache_control: str

    @property
    def immutable(self) -> bool:
        """Content-hashed: its name changes whenever its content does."""
        return self.cache_control == static_rules.CACHE_IMMUTABLE

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "cache_control": self.cache_control,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        return cls(
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            content_type=str(data["content_type"]),
            cache_control=str(data["cache_control"]),
        )

    @classmethod
    def for_content(cls, path: str, content: bytes) -> FileEntry:
        """The entry of ``content`` served at the relative ``path``."""
        return cls(
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            content_type=static_rules.content_type(path),
            cache_control=static_rules.cache_control(path),
        )


@dataclass(frozen=True)
class Manifest:
    """Every file of a build by relative path (``/`` separators, no leading slash)."""

    files: Mapping[str, FileEntry] = field(default_factory=dict)

    @property
    def build_id(self) -> str:
        """A short digest of the whole build (equal builds, equal ids)."""
        canonical = json.dumps(self.to_json()["files"], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "files": {path: self.files[path].to_json() for path in sorted(self.files)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise LlamawsError(f"unknown UI manifest format {data.get('format')!r}")
        return cls({path: FileEntry.from_json(entry) for path, entry in data["files"].items()})


def scan_build(directory: Path) -> Manifest:
    """The manifest of the build in ``directory`` (every regular file, links followed)."""
    if not (directory / static_rules.INDEX).is_file():
        raise LlamawsError(
            f"no UI build in {directory} (no {static_rules.INDEX}).",
            hint="Build it first: llamaws ui build.",
        )
    files: dict[str, FileEntry] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(directory).as_posix()
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        files[relative] = FileEntry(
            sha256=digest,
            size=path.stat().st_size,
            content_type=static_rules.content_type(relative),
            cache_control=static_rules.cache_control(relative),
        )
    return Manifest(files)


def manifest_path(deployment: Deployment) -> Path:
    """Where ``llamaws ui build`` writes the manifest: ``.llamaws/build/ui-manifest.json``."""
    return deployment.config_dir / ".llamaws" / "build" / "ui-manifest.json"


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` as JSON to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_json(), indent=1) + "\n")


def read_manifest(path: Path) -> Manifest:
    """Read a manifest written by :func:`write_manifest`."""
    return Manifest.from_json(json.loads(path.read_text()))
