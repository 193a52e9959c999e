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
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows import Workflow
from workflows.events import Event

from .config import Deployment
from .errors import WorkflowLoadError
from .upstream import served_workflow, served_workflow_names, workflow_steps

__all__ = ["LoadedWorkflow", "load_workflows", "waiter_event_types"]


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
        loaded = _workflows_of_server(_import_target(config.app, "app"))
    else:
        loaded = []
        for name, target in config.workflows.items():
            workflow = _import_target(target, f"workflows.{name}")
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


def _import_target(target: str, field_name: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise WorkflowLoadError(
                f"cannot import '{target}' ({field_name}): no module named '{exc.name}'",
                hint="Check the module path; app modules are looked up in src/ and the app dir.",
            ) from exc
        raise WorkflowLoadError(
            f"cannot import '{target}' ({field_name}): it needs the module '{exc.name}', "
            "which is not installed",
            hint="Install the app's dependencies (run `llamaws serve` without --no-install, "
            f"or `uv pip install {exc.name}`).",
        ) from exc
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
