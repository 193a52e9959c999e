"""``llamaws synth``: the deployment's CloudFormation (and assets), offline, checked.

The same preparation serves the CDK CLI: ``cdk.json`` runs ``python -m
llamaws.cli.synth`` (``npx cdk synth -c app_dir=examples/hello``), which reads the
app folder and setting overrides from the CDK context.

Preparing a stack (:mod:`llamaws.cli.stack_inputs`): resolve the deployment and its
``[tool.llamaws]`` settings, build (or reuse) the Lambda bundle with ``builder``,
generate the UI's CloudFront function with ``builder``, and hand those values to
``infra``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamaws.adapter.errors import LlamawsError
from llamaws.cli.stack_inputs import PreparedStack, display_path, prepare_stack, require_cdk

if TYPE_CHECKING:
    from aws_cdk import App

    from llamaws.infra.app import Synthesis
    from llamaws.infra.nag import NagFinding

__all__ = ["PreparedStack", "cdk_app", "prepare_stack", "require_cdk", "synth"]


def synth(
    app_dir: Annotated[
        Path, typer.Argument(help="App directory or deployment config file.")
    ] = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Cloud assembly directory [default: APP_DIR/cdk.out].")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 on any unacknowledged cdk-nag finding or cfn-lint error."
        ),
    ] = False,
    stage: Annotated[
        str | None, typer.Option(help="Stage suffix of the stack name (llamaws-<name>-<stage>).")
    ] = None,
    architecture: Annotated[str | None, typer.Option(help="arm64 (default) or x86_64.")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting", "-s", help="Override a [tool.llamaws] setting: KEY=VALUE (repeatable)."
        ),
    ] = None,
) -> None:
    """Synthesize the deployment's stack offline and check it (cdk-nag, cfn-lint)."""
    from llamaws.cli.main import _fail, _guarded

    overrides: dict[str, object] = {"stage": stage, "architecture": architecture}
    for item in setting or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--setting takes KEY=VALUE, not {item!r}", code=2)
        overrides[key.strip()] = value.strip()
    failed: list[bool] = []
    _guarded(lambda: failed.append(_synth(app_dir, out, strict, overrides)))
    if failed and failed[0]:
        raise typer.Exit(1)


def _synth(app_dir: Path, out: Path | None, strict: bool, overrides: dict[str, object]) -> bool:
    """Synthesize and report; True when ``--strict`` finds something."""
    started = time.monotonic()
    require_cdk()
    prepared = prepare_stack(app_dir, overrides)
    outdir = (out or prepared.deployment.config_dir / "cdk.out").resolve()
    _clear_assembly(outdir)

    from llamaws.infra.app import build_app, synthesize
    from llamaws.infra.nag import acknowledgements_in_assembly

    with _spinner("synthesizing the stack"):
        app, stack = build_app(prepared.inputs, outdir=outdir)
        synthesis = synthesize(app, stack)
    resources = len(json.loads(synthesis.template.read_text())["Resources"])
    print(f"stack {synthesis.stack_name}: {_display(synthesis.template)} ({resources} resources)")
    cache = prepared.deployment.config_dir / ".llamaws" / "build" / "nag"
    with _spinner("checking it with cdk-nag"):
        findings = _nag_findings(app, synthesis, cache)
    acknowledged = acknowledgements_in_assembly(synthesis.metadata)
    print(
        f"cdk-nag AwsSolutions: {len(findings)} unacknowledged finding(s), "
        f"{len(acknowledged)} acknowledged with a reason"
    )
    for finding in findings:
        print(f"  {finding}")
    problems = bool(findings)
    if strict:
        from llamaws.infra.lint import CDK_NOISE, lint_template

        with _spinner("checking it with cfn-lint"):
            lint = lint_template(synthesis.template)
        errors = [f for f in lint if f.is_error]
        ignored = ", ".join(sorted(CDK_NOISE))
        print(
            f"cfn-lint: {len(errors)} error(s), {len(lint) - len(errors)} warning(s) "
            f"({ignored} ignored: CDK noise)"
        )
        for lint_finding in lint:
            print(f"  {lint_finding}")
        problems = problems or bool(errors)
    print(f"synthesized to {_display(synthesis.outdir)} in {time.monotonic() - started:.1f} s")
    return strict and problems


def _spinner(what: str) -> AbstractContextManager[object]:
    """A spinner on stderr while ``what`` runs (on a terminal; nothing otherwise)."""
    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(f"{what}…")


def _nag_findings(app: App, synthesis: Synthesis, cache: Path) -> list[NagFinding]:
    """cdk-nag's findings, remembered per assembly: the same template and acknowledgements
    (``<stack>.metadata.json``) with the same cdk-nag give the same findings."""
    from importlib.metadata import version

    from llamaws.infra.nag import NagFinding, nag_findings

    digest = hashlib.sha256(version("cdk-nag").encode())
    for part in (synthesis.template, synthesis.metadata):
        digest.update(hashlib.sha256(part.read_bytes()).digest())
    remembered = cache / f"{digest.hexdigest()}.json"
    if remembered.is_file():
        try:
            return [
                NagFinding(item["rule"], item["description"], tuple(item["paths"]))
                for item in json.loads(remembered.read_text(encoding="utf-8"))
            ]
        except (ValueError, KeyError, TypeError):
            pass
    findings = nag_findings(app)
    cache.mkdir(parents=True, exist_ok=True)
    for stale in sorted(cache.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-20]:
        stale.unlink(missing_ok=True)
    remembered.write_text(json.dumps([asdict(f) for f in findings]), encoding="utf-8")
    return findings


def _clear_assembly(outdir: Path) -> None:
    """Start from an empty cloud assembly (stale assets would pile up)."""
    if not outdir.exists():
        return
    if not outdir.is_dir() or (any(outdir.iterdir()) and not (outdir / "manifest.json").exists()):
        raise LlamawsError(
            f"{outdir} exists and is not a cloud assembly",
            hint="Pass --out with a new or cdk.out directory.",
        )
    shutil.rmtree(outdir)


def _display(path: Path) -> str:
    return display_path(path)


def cdk_app(environ: Mapping[str, str] | None = None) -> int:
    """The app ``cdk.json`` runs: context ``app_dir`` (required) and setting overrides.

    The CDK CLI passes ``-c key=value`` in ``CDK_CONTEXT_JSON`` and the output directory
    in ``CDK_OUTDIR``; unacknowledged cdk-nag findings fail the synth (a validation
    plugin), as ``--strict`` does.
    """
    env = os.environ if environ is None else environ
    context = json.loads(env.get("CDK_CONTEXT_JSON") or "{}")
    app_dir = context.get("app_dir")
    if not app_dir:
        print("Error: pass the app folder: npx cdk synth -c app_dir=PATH", file=sys.stderr)
        return 2
    try:
        require_cdk()
        from aws_cdk import Validations
        from cdk_nag import AwsSolutionsChecks

        from llamaws.infra.app import build_app
        from llamaws.infra.settings import Settings

        fields = set(Settings.model_fields) - {"deployment"}
        overrides = {k: v for k, v in context.items() if k in fields}
        prepared = prepare_stack(
            Path(app_dir), overrides, echo=lambda line: print(line, file=sys.stderr)
        )
        app, _ = build_app(prepared.inputs)
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        app.synth()
    except LlamawsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cdk_app())
