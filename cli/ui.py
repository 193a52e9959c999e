"""``llamaws ui``: build a deployment's UI, publish it to S3 / CloudFront.

Thin: parses, calls :mod:`builder.ui_build` and :mod:`builder.publish`, renders
progress with rich on stderr (results on stdout).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from llamaws.adapter.config import Deployment
    from llamaws.builder.publish import PublishResult

__all__ = ["app", "parse_duration"]

app = typer.Typer(
    name="ui",
    help="Build a deployment's UI; publish it to S3 behind CloudFront.",
    no_args_is_help=True,
)

AppDir = Annotated[Path, typer.Argument(help="App directory or deployment config file.")]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` → a timedelta (ValueError otherwise)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 3600, 90s, 30m, 1h or 2d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _errors(ctx: typer.Context, *, show_tail: bool = True) -> Iterator[None]:
    """llamaws errors → one ``Error:`` line and exit 1 (tracebacks with ``llamaws -v``);
    a failed UI command's last lines first, unless they were already shown."""
    from llamaws.adapter.errors import LlamawsError
    from llamaws.builder.ui_build import UIBuildError

    try:
        yield
    except LlamawsError as exc:
        if ctx.find_root().params.get("verbose"):
            raise
        if isinstance(exc, UIBuildError) and exc.tail and show_tail:
            print("\n".join(f"  {line}" for line in exc.tail), file=sys.stderr)
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _deployment(app_dir: Path) -> Deployment:
    from llamaws.adapter.config import resolve_deployment
    from llamaws.adapter.errors import ConfigError

    deployment = resolve_deployment(app_dir)
    if deployment.config.ui is None:
        raise ConfigError(
            f"deployment '{deployment.name}' has no UI",
            hint="Add a [tool.llamadeploy.ui] section with its directory.",
        )
    return deployment


def _size(count: int) -> str:
    from rich.filesize import decimal

    return str(decimal(count))


@app.command(epilog="Example:\n\n  $ llamaws ui build examples/ui-app")
def build(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    install: Annotated[
        bool, typer.Option(help="Install the UI's packages first when they are missing or stale.")
    ] = True,
) -> None:
    """Build the UI for /deployments/<name>/ui and write its manifest."""
    from llamaws.adapter.config import resolve_environment
    from llamaws.builder.manifest import manifest_path, scan_build, write_manifest
    from llamaws.builder.ui_build import build_ui, ui_base_path

    console = _console()
    # On a terminal a spinner hides the output: a failure shows its last lines.
    with _errors(ctx, show_tail=console.is_terminal):
        deployment = _deployment(app_dir)
        environ = {**os.environ, **resolve_environment(deployment, os.environ)}
        what = f"Building the UI of '{deployment.name}' for {ui_base_path(deployment)}/"
        with _output_sink(console, what) as on_output:
            output = build_ui(deployment, environ, install=install, on_output=on_output)
        manifest = scan_build(output)
        written = manifest_path(deployment)
        write_manifest(manifest, written)
    hashed = sum(1 for entry in manifest.files.values() if entry.immutable)
    print(
        f"Built {output}: {len(manifest.files)} files, {_size(manifest.total_size)} "
        f"({hashed} content-hashed); manifest {written}"
    )


@contextmanager
def _output_sink(console: Console, what: str) -> Iterator[Callable[[str], None]]:
    """A spinner showing the build's latest line on a terminal; the lines otherwise."""
    from rich.text import Text

    if not console.is_terminal:
        console.print(what)
        yield lambda line: console.print(Text.assemble(("[ui] ", "dim"), line))
        return
    with console.status(what) as status:

        def show(line: str) -> None:
            if line.strip():
                status.update(Text.assemble(what, "  ", (line.strip()[:100], "dim")))

        yield show


class _RichProgress:
    """:class:`builder.publish.PublishProgress` as a rich bar (files and bytes), shown
    only once there is something to upload."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = console
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._files = 0
        self._total_files = 0
        self._started = False

    def start(self, files: int, total_bytes: int) -> None:
        if files == 0:
            return
        self._total_files = files
        self._started = True
        self._progress.start()
        self._task = self._progress.add_task(
            "uploading", total=total_bytes, files=f"0/{files} files"
        )

    def uploaded(self, path: str, size: int) -> None:
        assert self._task is not None
        self._files += 1
        self._progress.update(
            self._task, advance=size, files=f"{self._files}/{self._total_files} files"
        )

    def step(self, text: str) -> None:
        self.close()
        self._console.print(text, style="dim")

    def close(self) -> None:
        if self._started:
            self._started = False
            self._progress.stop()


@app.command(epilog="Example:\n\n  $ llamaws ui publish examples/ui-app --bucket my-ui-bucket")
def publish(
    ctx: typer.Context,
    bucket: Annotated[str, typer.Option(help="S3 bucket of the UI.")],
    app_dir: AppDir = Path("."),
    prefix: Annotated[
        str | None,
        typer.Option(help="Key prefix of the UI's files (default: deployments/<name>/ui)."),
    ] = None,
    distribution_id: Annotated[
        str | None, typer.Option(help="CloudFront distribution to invalidate.")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3 / CloudFront endpoint (a local engine); default: AWS.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    grace: Annotated[
        str,
        typer.Option(
            help="How long files the new version drops stay for pages still open on the "
            "old one (3600, 90s, 30m, 1h, 2d); they go at the first publish after that."
        ),
    ] = "1h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Upload the built UI incrementally, switch the live version, invalidate CloudFront once."""
    from llamaws.builder.publish import PublishTarget, aws_clients
    from llamaws.builder.publish import publish as run_publish

    try:
        grace_period = parse_duration(grace)
    except ValueError as exc:
        print(f"Error: --grace: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None

    console = _console()
    with _errors(ctx):
        deployment = _deployment(app_dir)
        assert deployment.ui_build_dir is not None
        target = PublishTarget.for_deployment(
            deployment, bucket, prefix=prefix, distribution_id=distribution_id
        )
        s3, cloudfront = aws_clients(endpoint_url, region)
        progress = _RichProgress(console)
        try:
            result = run_publish(
                deployment.ui_build_dir,
                target,
                s3=s3,
                cloudfront=cloudfront,
                grace=grace_period,
                dry_run=dry_run,
                progress=progress,
            )
        finally:
            progress.close()
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_describe(result, grace_period))


def _describe(result: PublishResult, grace: timedelta) -> str:
    plan, target = result.plan, result.target
    lines = []
    if result.dry_run:
        previous = plan.previous_build_id or "nothing"
        lines.append(f"Plan for {target.url} (live: {previous}, new: {plan.build_id}):")
        lines += [f"  upload      {u.path}  ({_size(u.entry.size)}, {u.entry.cache_control})"
                  for u in plan.uploads]  # fmt: skip
        until = (datetime.now(UTC) + grace).strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"  retire      {path}  (kept until {until})" for path in plan.retire]
        lines += [f"  delete      {path}" for path in plan.deletes]
        lines += [f"  invalidate  {path}" for path in result.invalidated]
    else:
        lines.append(f"Published build {plan.build_id} to {target.url}")
    verb = "to upload" if result.dry_run else "uploaded"
    lines.append(
        f"{len(plan.uploads)} {verb} ({_size(plan.bytes_to_upload)}), "
        f"{len(plan.unchanged)} unchanged, {len(plan.retire)} retired, "
        f"{len(plan.deletes)} deleted"
        + (f", {len(result.invalidated)} path(s) invalidated" if result.invalidated else "")
    )
    if plan.spa_routes_changed:
        lines.append(
            "Note: the build's extension-less files or directory indexes changed; the "
            "CloudFront function embeds them: redeploy the stack to update it."
        )
    return "\n".join(lines)
