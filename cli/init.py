"""``llamaws init``: a new app from a template, or ``--adopt`` an existing llamactl project.

Asks for what it was not given (template, name) with defaults; ``--yes`` (or no
terminal) takes the defaults, so scripts run ``llamaws init DIR --template hitl
--name approvals --yes``. It never overwrites a file without ``--force``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["init"]


def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the app (or the project to adopt).")
    ] = Path("."),
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            "-t",
            help="headless (one workflow), hitl (an approval that waits for a person) or ui "
            "(a Vite + React UI) [default: headless].",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", "-n", help="Deployment name [default: the directory's name, sanitized]."
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing: take the defaults.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="Add [tool.llamaws] to an existing llamactl project; change nothing else.",
        ),
    ] = False,
    llamaws_requirement: Annotated[
        str,
        typer.Option(
            "--llamaws-requirement",
            help="What the CI workflow installs (a version, a git URL, a wheel).",
        ),
    ] = "llamaws[cdk]",
) -> None:
    """Create an app from a template (API, tests, CI workflow), or adopt a llamactl project."""
    from llamaws.cli.main import _fail, _guarded

    if adopt:
        if template or name:
            _fail("--adopt keeps the project as it is: drop --template and --name", code=2)
        _guarded(lambda: _adopt(directory))
        return
    from llamaws.cli.scaffold import TEMPLATES

    ask = not yes and sys.stdin.isatty()
    if template is None:
        template = _choose_template() if ask else "headless"
    if template not in TEMPLATES:
        _fail(f"--template must be one of {', '.join(TEMPLATES)}, not {template!r}", code=2)
    default_name = _default_name(directory)
    if name is None:
        name = typer.prompt("Deployment name", default=default_name) if ask else default_name
    assert template is not None and name is not None
    chosen_template, chosen_name = template, name
    _guarded(lambda: _create(directory, chosen_template, chosen_name, force, llamaws_requirement))


def _choose_template() -> str:
    from llamaws.cli.scaffold import TEMPLATES

    for key, what in TEMPLATES.items():
        print(f"  {key:<9} {what}")
    while True:
        answer = str(typer.prompt("Template", default="headless")).strip()
        if answer in TEMPLATES:
            return answer
        print(f"Choose one of: {', '.join(TEMPLATES)}")


def _default_name(directory: Path) -> str:
    base = directory.resolve().name.lower()
    name = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}".strip("-")
    return name[:48]


def _create(directory: Path, template: str, name: str, force: bool, requirement: str) -> None:
    from llamaws.cli.scaffold import Project, write

    project = Project(template, name, llamaws_requirement=requirement)
    written = write(project, directory, force=force)
    print(f"Created {name} ({template}) in {directory}: {len(written)} files")
    for path in written:
        print(f"  {path.relative_to(directory).as_posix()}")
    where = "" if directory.resolve() == Path.cwd() else f" {directory}"
    print("Next:")
    print(f"  llamaws serve{where}              # http://127.0.0.1:4501/deployments/{name}/")
    print(f"  llamaws synth{where} --strict     # the AWS stack, checked offline")


def _adopt(directory: Path) -> None:
    from llamaws.cli.adopt import adopt

    adoption = adopt(directory)
    if adoption.changed:
        print(f"Adopted {adoption.name}: added [tool.llamaws] to {adoption.path}")
    else:
        print(f"{adoption.name} has [tool.llamaws] already ({adoption.path}): nothing changed")
