"""``--preview`` and the static rules it shares with the cloud publish."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from llamaws.builder import static_rules

from .support import Emulator
from .ui_support import ui_app_copy

UI = "/deployments/ui-app/ui"
BUILD = {"index.html", "assets/index-DxCaFXTz.js", "assets/index-DDL9CP8o.css", "robots.txt",
         "docs/index.html", "LICENSE", "fonts/inter.woff2"}  # fmt: skip


def resolve(path: str) -> str | None:
    return static_rules.resolve(path, BUILD.__contains__)


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("", "index.html"),
        ("assets/index-DxCaFXTz.js", "assets/index-DxCaFXTz.js"),
        ("some/client/route", "index.html"),  # SPA fallback
        ("some/client/route/", "index.html"),
        ("docs", "docs/index.html"),
        ("docs/", "docs/index.html"),
        ("LICENSE", "LICENSE"),  # an extension-less file is itself
        ("assets/gone.js", None),  # missing assets are 404s, never HTML
        ("missing.css", None),
        (".well-known", "index.html"),
    ],
)
def test_spa_fallback_rule(path: str, served: str | None) -> None:
    assert resolve(path) == served


def test_cache_and_content_type_rules() -> None:
    assert static_rules.cache_control("assets/index-DxCaFXTz.js") == static_rules.CACHE_IMMUTABLE
    assert static_rules.cache_control("main.3f9a2c1e.css") == static_rules.CACHE_IMMUTABLE
    assert static_rules.cache_control("index.html") == "no-cache"
    assert static_rules.cache_control("robots.txt") == "no-cache"
    assert static_rules.cache_control("my-component.js") == "no-cache"  # a name, not a hash
    # Rollup's base64url hashes may hold a '-'; a size in a name is no hash.
    assert static_rules.cache_control("assets/index-D-PbV2Hm.css") == static_rules.CACHE_IMMUTABLE
    assert static_rules.cache_control("apple-touch-icon-180x180.png") == "no-cache"
    assert static_rules.content_type("a.js") == "text/javascript; charset=utf-8"
    assert static_rules.content_type("a.svg") == "image/svg+xml; charset=utf-8"
    assert static_rules.content_type("a.woff2") == "font/woff2"
    assert static_rules.content_type("LICENSE") == "application/octet-stream"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_cloudfront_function_applies_the_same_rule() -> None:
    code = static_rules.cloudfront_function_code(UI, BUILD)
    paths = ["", "assets/index-DxCaFXTz.js", "some/route", "some/route/", "docs", "docs/",
             "LICENSE", "assets/gone.js"]  # fmt: skip
    script = code + (
        f"const out = {json.dumps(paths)}.map(p => handler({{request: {{uri: "
        f"{json.dumps(UI + '/')} + p}}}}).uri);\nconsole.log(JSON.stringify(out));"
    )
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    rewritten = json.loads(result.stdout)
    for path, uri in zip(paths, rewritten, strict=True):
        expected = resolve(path) or path  # a 404 stays the same URI (S3 answers 404)
        assert uri == f"{UI}/{expected}", path


def test_preview_builds_and_serves_the_ui(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = ui_app_copy(tmp_path)
    emulator = emulator_factory(app, "--preview")
    assert "building the UI" in emulator.logs()
    assets = sorted(p.name for p in (app / "ui" / "dist" / "assets").iterdir())
    script = next(name for name in assets if name.endswith(".js"))

    with httpx.Client(base_url=emulator.url) as client:
        redirect = client.get(UI)
        assert redirect.status_code == 307
        assert redirect.headers["location"] == f"{UI}/"

        index = client.get(f"{UI}/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert index.headers["cache-control"] == "no-cache"
        assert f"{UI}/assets/{script}" in index.text  # built with the base path

        asset = client.get(f"{UI}/assets/{script}")
        assert asset.headers["content-type"] == "text/javascript; charset=utf-8"
        assert asset.headers["cache-control"] == static_rules.CACHE_IMMUTABLE

        route = client.get(f"{UI}/settings/profile")
        assert route.status_code == 200 and route.text == index.text

        assert client.get(f"{UI}/assets/missing-AbCd1234.js").status_code == 404
        assert client.get(f"{UI}/robots.txt").headers["cache-control"] == "no-cache"
        not_modified = client.get(f"{UI}/", headers={"if-none-match": index.headers["etag"]})
        assert not_modified.status_code == 304
        # The API still answers beside the UI.
        assert client.get("/deployments/ui-app/workflows").json() == {"workflows": ["greet"]}
