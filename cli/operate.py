"""What the deploy-and-operate commands share: their AWS options, errors, progress.

``deploy``, ``bootstrap``, ``destroy``, ``status``, ``logs`` and ``secrets`` take the
same ``--endpoint-url`` / ``--region`` / ``--profile`` / ``--stage``; the AWS side of
their work is in ``infra`` (stacks, status, logs, secret values, destroy), the deploy's
sequence in :mod:`llamaws.cli.deploy_phases`; this renders phases with rich on stderr
(results go to stdout).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from llamaws.adapter.config import Deployment
    from llamaws.infra.progress import Phase
    from llamaws.infra.settings import Settings
    from llamaws.infra.target import AwsTarget

__all__ = [
    "AppDir",
    "EndpointUrl",
    "Profile",
    "Region",
    "RichProgress",
    "Stage",
    "console",
    "errors",
    "resolve",
    "target",
]

AppDir = Annotated[Path, typer.Argument(help="App directory or deployment config file.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Every AWS service at this URL (a local engine such as moto server); the "
        "standard AWS_ENDPOINT_URL* variables work too. Default: AWS.",
    ),
]
Region = Annotated[str | None, typer.Option(help="AWS region (default: the environment's).")]
Profile = Annotated[str | None, typer.Option(help="AWS profile (default: the environment's).")]
Stage = Annotated[
    str | None, typer.Option(help="Stage suffix of the stack name (llamaws-<name>-<stage>).")
]


def console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def target(endpoint_url: str | None, region: str | None, profile: str | None) -> AwsTarget:
    """The AWS target of the options; ``--profile`` applies to this process and the CDK CLI."""
    from llamaws.infra.target import AwsTarget

    if profile:
        os.environ["AWS_PROFILE"] = profile
    return AwsTarget.resolve(endpoint_url, region)


def resolve(app_dir: Path, stage: str | None) -> tuple[Deployment, Settings]:
    """The deployment and its stack settings (``--stage`` applied)."""
    from llamaws.adapter.config import resolve_deployment
    from llamaws.infra.settings import resolve_settings

    deployment = resolve_deployment(app_dir)
    return deployment, resolve_settings(deployment, {"stage": stage})


@contextmanager
def errors(ctx: typer.Context) -> Iterator[None]:
    """llamaws errors → the failing tool's last lines (if any), then one ``Error:`` line,
    exit 1; tracebacks with ``llamaws -v``."""
    from llamaws.adapter.errors import LlamawsError

    try:
        yield
    except LlamawsError as exc:
        if ctx.find_root().params.get("verbose"):
            raise
        tail = getattr(exc, "tail", ())
        if tail:
            print("\n".join(f"  {line}" for line in list(tail)[-15:]), file=sys.stderr)
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


class _RichPhase:
    def __init__(self, title: str, status: Status | None) -> None:
        self.title = title
        self.status = status
        self.summary = ""

    def update(self, text: str) -> None:
        if self.status is not None:
            from rich.text import Text

            self.status.update(Text.assemble(f"{self.title}  ", (text.strip()[:110], "dim")))

    def done(self, summary: str) -> None:
        self.summary = summary


class RichProgress:
    """:class:`llamaws.infra.progress.Progress` on a rich console: a spinner with the latest
    line while a phase runs (on a terminal), a ✓ line with its outcome when it ends."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def phase(self, title: str) -> AbstractContextManager[Phase]:
        return self._phase(title)

    @contextmanager
    def _phase(self, title: str) -> Iterator[Phase]:
        from contextlib import nullcontext

        from rich.markup import escape

        status_cm = self.out.status(f"{title}…") if self.out.is_terminal else nullcontext(None)
        with status_cm as status:
            phase = _RichPhase(title, status)
            try:
                yield phase
            except BaseException:
                self.out.print(f"[red]✗[/] {title}", soft_wrap=True)
                raise
        self.out.print(f"[green]✓[/] {title:<10} {escape(phase.summary or 'done')}", soft_wrap=True)

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.out.print(escape(text), style="dim", soft_wrap=True)

    def warn(self, text: str) -> None:
        from rich.markup import escape

        self.out.print(f"[yellow]Warning:[/] {escape(text)}", soft_wrap=True)
