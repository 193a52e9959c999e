"""Helpers for the UI tests: the ui-app example with its installed node_modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .support import EXAMPLES

UI_APP_MODULES = EXAMPLES / "ui-app" / "ui" / "node_modules"


def ui_app_copy(root: Path) -> Path:
    """Copy examples/ui-app under ``root``, linking its node_modules (skip when absent)."""
    if not (UI_APP_MODULES / ".bin" / "vite").exists():
        pytest.skip("examples/ui-app/ui/node_modules is missing: run .ci/install-ui-deps.sh")
    app = root / "ui-app"
    shutil.copytree(
        EXAMPLES / "ui-app",
        app,
        ignore=shutil.ignore_patterns("node_modules", "dist", "workflows.db*", ".emulator-*"),
    )
    (app / "ui" / "node_modules").symlink_to(UI_APP_MODULES, target_is_directory=True)
    return app
