"""Prepare a deployment's stack: settings resolved, Lambda bundle built (or reused), the
UI's CloudFront function generated; handed to ``infra`` as :class:`StackInputs` values.

``llamaws synth``, ``cdk.json``'s app and ``llamaws deploy`` all start here (``infra``
never imports ``builder``: the CLI hands builder's outputs over, here).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llamaws.adapter.errors import LlamawsError

if TYPE_CHECKING:
    from llamaws.adapter.config import Deployment
    from llamaws.builder.lambda_bundle import Bundle
    from llamaws.infra.stack import StackInputs

__all__ = ["CdkMissing", "PreparedStack", "display_path", "prepare_stack", "require_cdk"]

CDK_MODULES = ("aws_cdk", "constructs", "cdk_nag", "cfnlint")


class CdkMissing(LlamawsError):
    """The CDK libraries are not installed."""


@dataclass(frozen=True)
class PreparedStack:
    """Everything ``infra`` needs, resolved and built."""

    deployment: Deployment
    inputs: StackInputs
    bundle: Bundle


def require_cdk() -> None:
    """Fail in one line when the CDK libraries (``llamaws[cdk]``) are missing; set up jsii."""
    missing = [name for name in CDK_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CdkMissing(
            f"the CDK libraries are not installed ({', '.join(missing)})",
            hint="Install them with `pip install 'llamaws[cdk]'` "
            "(or `uv sync --extra cdk` in a checkout).",
        )
    if not shutil.which("node") and not os.environ.get("JSII_NODE"):
        raise CdkMissing(
            "the CDK needs Node.js (jsii runs the construct library in node)",
            hint="Install Node.js 22 (or 20), or set JSII_NODE to a node binary.",
        )
    _silence_node_end_of_life()


def _silence_node_end_of_life() -> None:
    """jsii prints a 10-line banner for an end-of-life Node (20): one version we accept."""
    if "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" in os.environ:
        return
    node = os.environ.get("JSII_NODE") or shutil.which("node") or "node"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return
    major = version.lstrip("v").split(".", 1)[0]
    if major.isdigit():
        os.environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = major


def prepare_stack(
    app_dir: Path,
    overrides: Mapping[str, object],
    echo: Callable[[str], None] = print,
) -> PreparedStack:
    """Resolve settings, build (or reuse) the bundle, generate the UI function code."""
    from llamaws.adapter.config import resolve_deployment
    from llamaws.builder.lambda_bundle import build_bundle, bundle_requirements, bundle_target
    from llamaws.builder.static_rules import cloudfront_function_code
    from llamaws.infra.settings import resolve_settings
    from llamaws.infra.stack import StackInputs

    deployment = resolve_deployment(app_dir)
    settings = resolve_settings(deployment, overrides)
    target = bundle_target(settings.architecture, settings.python)
    requirements = bundle_requirements(deployment, target)
    bundle = build_bundle(deployment, requirements, target)
    where = display_path(bundle.zip_path)
    echo(f"bundle {where}{' (unchanged)' if bundle.reused else ''}: {bundle.summary()}")
    for note in bundle.notes:
        echo(f"note: {note}")
    ui_code: str | None = None
    if deployment.config.ui is not None:
        built = deployment.ui_build_dir
        files = (
            [p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()]
            if built is not None and (built / "index.html").is_file()
            else ["index.html"]
        )
        ui_code = cloudfront_function_code(f"{settings.base_path}/ui", files)
    inputs = StackInputs(
        settings=settings,
        code=bundle.zip_path,
        ui_function_code=ui_code,
        app_paths=tuple(deployment.python_paths),
    )
    return PreparedStack(deployment, inputs, bundle)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
