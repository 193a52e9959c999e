"""The published UI in headless Chromium, served like CloudFront serves it.

The ui-app example is built, published to a bucket of the local S3 engine, and
loaded through a local front (tests/cloudfront_front.py) that runs the generated
CloudFront Function on each UI request and reads the bucket, and relays the API to
an emulator: the page, a deep link (SPA fallback) and a whole run must work with no
failed request.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from llamaws.adapter.config import resolve_deployment
from llamaws.builder import static_rules
from llamaws.builder.manifest import scan_build
from llamaws.builder.publish import PublishTarget, aws_clients, publish
from llamaws.builder.ui_build import build_ui

from .cloudfront_front import cloudfront_front
from .engines import MotoServer
from .support import Emulator
from .test_browser import BROWSER_DIR, CHROMIUM, _missing
from .ui_support import ui_app_copy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]


def _api_only(app: Path) -> Path:
    """The app without its UI section: the emulator serves the API alone."""
    pyproject = app / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text[: text.index("[tool.llamadeploy.ui]")])
    return app


def test_published_ui_works_in_chromium_behind_a_cloudfront_like_front(
    tmp_path: Path, moto_server: MotoServer, emulator_factory: Callable[..., Emulator]
) -> None:
    app = ui_app_copy(tmp_path / "published")
    deployment = resolve_deployment(app)
    dist = build_ui(deployment, dict(os.environ), install=False, on_output=lambda line: None)
    s3, _ = aws_clients(moto_server.endpoint)
    bucket = f"ui-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    target = PublishTarget.for_deployment(deployment, bucket)
    assert publish(dist, target, s3=s3).to_json()["uploaded"] == len(scan_build(dist).files)

    emulator = emulator_factory(_api_only(ui_app_copy(tmp_path / "api")))
    code = static_rules.cloudfront_function_code(target.base_path, scan_build(dist).files)
    with cloudfront_front(function_code=code, s3=s3, bucket=bucket, ui_base=target.base_path,
                          api_origin=emulator.url, tmp=tmp_path) as front:  # fmt: skip
        result = subprocess.run(
            ["node", str(BROWSER_DIR / "drive.mjs"), front, "published"],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=BROWSER_DIR,
            env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
            check=False,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in report, report["error"]
    assert report["failed"] == []
    assert report["consoleErrors"] == []
    assert report["ui"]["title"] == "ui-app"
    assert report["ui"]["prompt"] == "What is your favourite colour?"
    assert report["ui"]["result"] == "Your favourite is blue."
    assert report["deepLink"] == {"status": 200, "title": "ui-app", "hasStart": True}
    assert report["bareUrl"] == f"{front}/deployments/ui-app/ui/"
