"""The rules for serving a built UI: SPA fallback, content types, cache headers.

One module decides, so the emulator's ``--preview`` and the cloud publish (S3
object metadata + the CloudFront viewer-request function) behave the same:

- a path that names a file is that file; ``dir/`` is ``dir/index.html`` when it
  exists;
- an extension-less path that is not a file falls back to ``index.html`` (the
  SPA's client-side router takes over); ``dir`` with a ``dir/index.html`` is that;
- any other missing path (``assets/gone.js``) is a 404, never HTML;
- HTML and unhashed files are ``no-cache`` (revalidated on every load, so a new
  deploy shows at once); content-hashed files (``assets/index-D9x2Lk_Q.js``) are
  ``immutable`` for a year.

Paths here are relative to the UI root (the part after ``/deployments/<n>/ui/``),
with ``/`` separators and no leading slash.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from llamaws.adapter.errors import LlamawsError

__all__ = [
    "CACHE_IMMUTABLE",
    "CACHE_REVALIDATE",
    "FUNCTION_SIZE_LIMIT",
    "INDEX",
    "cache_control",
    "cloudfront_function_code",
    "content_type",
    "function_routes",
    "is_hashed",
    "resolve",
]

INDEX = "index.html"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
FUNCTION_SIZE_LIMIT = 10_240
"""CloudFront Functions' maximum code size, in bytes."""

# A content hash as bundlers write it: ``name-<hash>.ext`` / ``name.<hash>.ext``
# (Vite/Rollup: 8 base64url characters, ``-`` included as in ``index-D-PbV2Hm.css``;
# webpack: hex ``[contenthash]``).
_HASH_RE = re.compile(r"[.-](?P<hash>[A-Za-z0-9_-]{8}|[A-Za-z0-9_]{9,64})\.[A-Za-z0-9]+$")
_HASHED_DIRS = ("assets/", "_next/static/", "static/")

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".ico": "image/x-icon",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}
_CHARSET_TYPES = ("text/", "application/json", "application/manifest+json", "application/xml",
                  "image/svg+xml")  # fmt: skip


def _last_segment(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _has_extension(path: str) -> bool:
    return "." in _last_segment(path).lstrip(".")


def resolve(path: str, is_file: Callable[[str], bool]) -> str | None:
    """The file to serve for ``path``, or ``None`` for a 404.

    ``is_file`` says whether a relative path is a file of the build (a stat locally,
    a manifest lookup in the cloud).
    """
    path = path.lstrip("/")
    if path == "" or path.endswith("/"):
        index = f"{path}{INDEX}"
        return index if is_file(index) else (INDEX if is_file(INDEX) else None)
    if is_file(path):
        return path
    if _has_extension(path):
        return None
    nested = f"{path}/{INDEX}"
    if is_file(nested):
        return nested
    return INDEX if is_file(INDEX) else None


def is_hashed(path: str) -> bool:
    """Whether ``path`` carries a content hash (so it never changes)."""
    match = _HASH_RE.search(_last_segment(path))
    if match is None or path.endswith(".html"):
        return False
    digest = match["hash"]
    under_hashed_dir = path.startswith(_HASHED_DIRS) or "/assets/" in path
    return under_hashed_dir or any(c.isdigit() for c in digest)


def cache_control(path: str) -> str:
    """``Cache-Control`` for ``path``: immutable when hashed, else revalidate."""
    return CACHE_IMMUTABLE if is_hashed(path) else CACHE_REVALIDATE


def content_type(path: str) -> str:
    """``Content-Type`` for ``path`` (with ``charset=utf-8`` for text)."""
    name = _last_segment(path).lower()
    suffix = name[name.rfind(".") :] if "." in name else ""
    guessed = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if guessed.startswith(_CHARSET_TYPES):
        return f"{guessed}; charset=utf-8"
    return guessed


def function_routes(files: Iterable[str]) -> list[str]:
    """The files :func:`resolve` cannot tell from a URL alone, sorted.

    Extension-less files (``LICENSE``) and directory indexes (``docs/index.html``):
    the CloudFront function embeds them, so a build that changes this list needs the
    function redeployed.
    """
    return sorted(
        {f for f in files if not _has_extension(f) or f.endswith(f"/{INDEX}") or f == INDEX}
    )


def cloudfront_function_code(base_path: str, files: Iterable[str] = ()) -> str:
    """A CloudFront Function (viewer-request, JS 2.0) applying :func:`resolve`.

    Rendered from ``templates/cloudfront_function.js.j2``. ``base_path`` is the UI
    prefix (``/deployments/<n>/ui``); ``files`` the build's relative paths, of which
    only :func:`function_routes` are embedded (the rest follows from the URL), to stay
    far below CloudFront's 10 KB limit: a larger function is an error.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    code = environment.get_template("cloudfront_function.js.j2").render(
        prefix=base_path.rstrip("/") + "/",
        known=dict.fromkeys(function_routes(files), 1),
    )
    if len(code.encode()) > FUNCTION_SIZE_LIMIT:
        raise LlamawsError(
            f"the UI's CloudFront function would be {len(code.encode())} bytes, over "
            f"CloudFront's {FUNCTION_SIZE_LIMIT} (too many extension-less files or "
            "directory indexes in the build).",
            hint="Give those files an extension, or drop the nested index.html pages.",
        )
    return code
