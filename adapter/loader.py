"""Import the workflows a deployment names, with the event types they wait for.

``module:attr`` targets are imported with the app's ``src/`` (else its directory) on
``sys.path``, so an app's modules load without installing its package. Every event
type a step passes to ``ctx.wait_for_event(T, waiter_event=E)`` is found in the
step's source and registered as an additional event: the reference server needs
them listed by hand, and a missing one breaks reload after an idle release.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows import Workflow
from workflows.events import Event

from .config import Deployment
from .errors import MissingModuleError, WorkflowLoadError
from .upstream import served_workflow, served_workflow_names, workflow_steps

__all__ = ["LoadedWorkflow", "load_workflows", "missing_module_error", "waiter_event_types"]


@dataclass
class LoadedWorkflow:
    """A workflow to serve under ``name`` and the extra event types it accepts."""

    name: str
    workflow: Workflow
    additional_events: list[type[Event]] = field(default_factory=list)


def load_workflows(deployment: Deployment) -> list[LoadedWorkflow]:
    """Import the deployment's workflows (or its ``app`` server's workflows)."""
    _add_import_paths(deployment.python_paths)
    config = deployment.config
    if config.app is not None:
        loaded = _workflows_of_server(_import_target(config.app, "app", deployment.config_dir))
    else:
        loaded = []
        for name, target in config.workflows.items():
            workflow = _import_target(target, f"workflows.{name}", deployment.config_dir)
            if not isinstance(workflow, Workflow):
                raise WorkflowLoadError(
                    f"'{target}' (workflows.{name}) is a {type(workflow).__name__}, "
                    "not a Workflow instance"
                )
            loaded.append(LoadedWorkflow(name, workflow))
    for item in loaded:
        for event_type in waiter_event_types(item.workflow):
            if event_type not in item.additional_events:
                item.additional_events.append(event_type)
    return loaded


def waiter_event_types(workflow: Workflow) -> list[type[Event]]:
    """Event types named in ``wait_for_event`` calls of the workflow's steps."""
    found: list[type[Event]] = []
    for step in workflow_steps(workflow).values():
        for event_type in _waited_types(step):
            if event_type not in found:
                found.append(event_type)
    return found


def _waited_types(step: Callable[..., Any]) -> Iterable[type[Event]]:
    func = inspect.unwrap(step)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return
    namespace: dict[str, Any] = {**getattr(func, "__globals__", {})}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "wait_for_event"
        ):
            continue
        candidates = [*node.args[:1]]
        candidates += [k.value for k in node.keywords if k.arg in ("event_type", "waiter_event")]
        for expr in candidates:
            value = _resolve(expr, namespace)
            if isinstance(value, type) and issubclass(value, Event):
                yield value


def _resolve(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return namespace.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, namespace)
        return getattr(base, expr.attr, None) if base is not None else None
    if isinstance(expr, ast.Call):
        # waiter_event=AskEvent(prompt=...): the type is what is called.
        return _resolve(expr.func, namespace)
    return None


def _add_import_paths(paths: list[Path]) -> None:
    for path in reversed(paths):
        entry = str(path)
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _import_target(target: str, field_name: str, app_dir: Path) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise WorkflowLoadError(
                f"cannot import '{target}' ({field_name}): no module named '{exc.name}'",
                hint="Check the module path; app modules are looked up in src/ and the app dir.",
            ) from exc
        raise missing_module_error(target, field_name, exc.name or "?", app_dir) from exc
    except Exception as exc:
        raise WorkflowLoadError(
            f"cannot import '{target}' ({field_name}): {type(exc).__name__}: {exc}"
        ) from exc
    try:
        value = module
        for part in attr.split("."):
            value = getattr(value, part)
    except AttributeError as exc:
        raise WorkflowLoadError(
            f"cannot import '{target}' ({field_name}): module '{module_name}' has no "
            f"attribute '{attr}'"
        ) from exc
    return value


# Import names whose distribution is named otherwise (the common ones).
_DISTRIBUTIONS = {
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "fitz": "pymupdf",
    "jwt": "pyjwt",
    "magic": "python-magic",
    "PIL": "pillow",
    "pptx": "python-pptx",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
}


def missing_module_error(
    target: str, field_name: str, missing: str, app_dir: Path
) -> MissingModuleError:
    """The error for ``target`` needing ``missing``: it names the distribution to add."""
    top = missing.split(".", 1)[0]
    installed = _installed_distribution(top)
    if installed is not None and top != missing:
        name, version = installed
        return MissingModuleError(
            f"cannot import '{target}' ({field_name}): it needs the module '{missing}', "
            f"which {name} {version} (installed) does not have",
            module=missing,
            distribution=name,
            hint=f"The app needs another version of {name}: pin it in the app's "
            "[project].dependencies (pyproject.toml).",
        )
    distribution = (
        _declared_distribution(top, app_dir)
        or _DISTRIBUTIONS.get(top)
        or (re.sub(r"[-_.]+", "-", top).lower())
    )
    return MissingModuleError(
        f"cannot import '{target}' ({field_name}): it needs the module '{missing}', "
        "which is not installed",
        module=missing,
        distribution=distribution,
        hint=f"Add '{distribution}' to the app's [project].dependencies (pyproject.toml); "
        "llamaws installs them into the app's environment.",
    )


def _installed_distribution(top_level: str) -> tuple[str, str] | None:
    from importlib import metadata

    names = metadata.packages_distributions().get(top_level) or []
    if len(set(names)) != 1:  # none, or a namespace shared by several (google.*)
        return None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return None


def _declared_distribution(top_level: str, app_dir: Path) -> str | None:
    """The app dependency whose name matches the module (``llama_cloud`` → ``llama-cloud``)."""
    import tomllib

    try:
        with (app_dir / "pyproject.toml").open("rb") as handle:
            specs = tomllib.load(handle).get("project", {}).get("dependencies", [])
    except (OSError, tomllib.TOMLDecodeError):
        return None
    wanted = re.sub(r"[-_.]+", "-", top_level).lower()
    for spec in specs if isinstance(specs, list) else []:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", str(spec))
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == wanted:
            return match.group(1)
    return None


def _workflows_of_server(server: Any) -> list[LoadedWorkflow]:
    from llama_agents.server import WorkflowServer

    if not isinstance(server, WorkflowServer):
        raise WorkflowLoadError(
            f"'app' must point at a WorkflowServer instance, got a {type(server).__name__}"
        )
    extra = server.additional_events
    return [
        LoadedWorkflow(name, workflow, list(extra.get(name, ())))
        for name in served_workflow_names(server)
        if (workflow := served_workflow(server, name)) is not None
    ]
