"""Wire wait tokens into a deployment's app: one call before the server, one after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..loader import waiter_event_types
from .config import wait_defaults
from .runtime import (
    WaitsDecorator,
    add_unhandled_endings,
    register_workflow,
    returns_input_required,
)
from .service import WaitTokens
from .stores import token_store_for

if TYPE_CHECKING:
    from llama_agents.server import AbstractWorkflowStore
    from workflows.runtime.types.plugin import Runtime

    from ..config import Deployment
    from ..loader import LoadedWorkflow

__all__ = ["wait_tokens_for", "with_wait_tokens"]


def wait_tokens_for(
    deployment: Deployment, workflows: Sequence[LoadedWorkflow], store: AbstractWorkflowStore
) -> WaitTokens:
    """The deployment's wait tokens, kept beside ``store``'s runs; prepares ``workflows``
    (call before they are added to the server)."""
    waits = WaitTokens(
        token_store_for(store),
        store,
        deployment=deployment.name,
        defaults=wait_defaults(deployment),
    )
    for item in workflows:
        add_unhandled_endings(item.workflow)
        asks = returns_input_required(item.workflow)
        waits.learn(item.workflow, may_wait=asks or bool(waiter_event_types(item.workflow)))
        register_workflow(item.workflow, waits)
    return waits


def with_wait_tokens(runtime: Runtime, waits: WaitTokens) -> Runtime:
    """``runtime`` with the decorator that issues and closes tokens outermost."""
    return WaitsDecorator(runtime, waits)
