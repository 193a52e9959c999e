"""The Lambda entrypoint: ``llamaws.adapter.handler.handler``.

HTTP events (API Gateway v1/v2, Function URL, ALB) go to Mangum; llamaws's own
events (``{"llamaws": {"kind": "continue" | "sweep", ...}}``) go to the run driver.
The container (loop, app, store) is built once, on the first invocation after a
cold start, from the environment (see ``ContainerSettings.from_env``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lambda_runtime.container import Container, LambdaContext

__all__ = ["handler"]

_container: Container | None = None


def handler(event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Serve one Lambda invocation."""
    global _container
    if _container is None:
        from .lambda_runtime.container import Container

        _container = Container.from_env()
    return _container.invoke(event, context)
