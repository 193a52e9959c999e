"""New app projects from templates (``llamaws init``): plan the files, then write them.

Templates are package data under ``cli/templates/init/``: ``common/`` (pyproject,
README, ``.gitignore``, the GitHub Actions workflow) plus one folder per template.
In their paths ``__module__`` becomes the app's Python package and a leading ``_``
becomes ``.`` (``_github`` → ``.github``: package data skips dot folders); files
ending ``.j2`` are rendered with jinja2 (``StrictUndefined``), others copied as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from llamaws.adapter.errors import ConfigError, LlamawsError

__all__ = [
    "TEMPLATES",
    "WORKFLOW_FILE",
    "Project",
    "module_name",
    "plan",
    "write",
]

TEMPLATES: dict[str, str] = {
    "headless": "one workflow, no UI",
    "hitl": "an approval that waits for a person (wait token, timeout, rejection)",
    "ui": "a workflow with a Vite + React UI (@llamaindex/ui)",
}
"""Template name → what it makes."""
WORKFLOW_FILE = ".github/workflows/llamaws.yml"
"""The CI workflow every template writes."""

_WORKFLOWS = {"headless": ["greet"], "hitl": ["approval"], "ui": ["greet"]}
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,47}$")


@dataclass(frozen=True)
class Project:
    """What ``llamaws init`` makes: a template, a name, the llamaws to install in CI."""

    template: str
    name: str
    llamaws_requirement: str = "llamaws[cdk]"

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ConfigError(
                f"unknown template {self.template!r}",
                hint=f"Use one of: {', '.join(TEMPLATES)}.",
            )
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"{self.name!r} is not a deployment name",
                hint="Use lower-case letters, digits and '-', starting with a letter (at most 48).",
            )

    @property
    def module(self) -> str:
        """The app's Python package."""
        return module_name(self.name)

    def context(self) -> dict[str, object]:
        """The templates' variables."""
        return {
            "name": self.name,
            "module": self.module,
            "template": self.template,
            "description": f"{self.name}: {TEMPLATES[self.template]}.",
            "workflows": _WORKFLOWS[self.template],
            "hitl": self.template == "hitl",
            "ui": self.template == "ui",
            "llamaws_requirement": self.llamaws_requirement,
        }


def module_name(name: str) -> str:
    """``my-app`` → ``my_app``."""
    return name.replace("-", "_")


def plan(project: Project) -> dict[str, str]:
    """Every file of the new project: relative path → content."""
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    context = project.context()
    root = files("llamaws.cli").joinpath("templates", "init")
    out: dict[str, str] = {}
    for part in ("common", project.template):
        for relative, source in _walk(root.joinpath(part), ""):
            text = source.read_text(encoding="utf-8")
            target = _target(relative, project.module)
            if relative.endswith(".j2"):
                target = target.removesuffix(".j2")
                text = env.from_string(text).render(context)
            out[target] = text
    return dict(sorted(out.items()))


def write(project: Project, directory: Path, *, force: bool = False) -> list[Path]:
    """Write the project into ``directory``; refuse to overwrite a file unless ``force``."""
    planned = plan(project)
    existing = [rel for rel in planned if (directory / rel).exists()]
    if existing and not force:
        raise LlamawsError(
            f"{directory / existing[0]} exists ({len(existing)} file(s) would be overwritten)",
            hint="Pick an empty directory, or pass --force to overwrite them.",
        )
    written = []
    for relative, text in planned.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_walk(entry, relative + "/"))
        else:
            found.append((relative, entry))
    return found


def _target(relative: str, module: str) -> str:
    parts = []
    for part in relative.split("/"):
        part = part.replace("__module__", module)
        if part.startswith("_") and not part.startswith("__"):
            part = "." + part[1:]
        parts.append(part)
    name = parts[-1]
    if name in ("gitignore", "gitignore.j2"):
        parts[-1] = "." + name
    return "/".join(parts)
