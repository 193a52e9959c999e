"""Deterministic zip archives: the same files give the same bytes.

Entries are sorted by path, carry a fixed timestamp (1980-01-01, the zip epoch)
and a fixed mode (0644, 0755 for executables), no directory entries, no extra
fields; so an archive's hash changes only when a file's path, content or
executability does.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["write_zip"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(directory: Path, target: Path, *, compresslevel: int = 6) -> int:
    """Zip every file under ``directory`` into ``target`` (atomically); returns its size."""
    files = sorted(
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file()
    )
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    with zipfile.ZipFile(
        partial, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # unix: the mode below is honoured
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as source, archive.open(info, "w") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
    os.replace(partial, target)
    return target.stat().st_size
