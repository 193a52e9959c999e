"""``stack_customizers``: the team's own functions, applied to the built stack.

``[tool.llamaws] stack_customizers = ["module:function"]`` names callables that
receive the stack once llamaws has built it (tags, permission boundaries, extra
resources, removing what a target cannot create). Modules are imported from the
app's ``src/`` and folder (like its workflows), then from the environment.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from llamaws.adapter.errors import ConfigError, LlamawsError

__all__ = ["apply_customizers", "load_customizer"]


def load_customizer(target: str, search_path: Sequence[Path] = ()) -> Callable[[Any], object]:
    """The callable named ``module:function`` (``search_path`` first on ``sys.path``)."""
    module_name, _, attribute = target.partition(":")
    added = [str(p) for p in search_path if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"stack customizer {target!r}: cannot import {module_name!r}: {exc}",
            hint="Check [tool.llamaws] stack_customizers (module:function, from the app's folder).",
        ) from exc
    finally:
        for path in added:
            if path in sys.path:
                sys.path.remove(path)
    found: object = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ConfigError(f"stack customizer {target!r}: {module_name} has no {attribute!r}")
    if not callable(found):
        raise ConfigError(f"stack customizer {target!r} is not callable")
    return found


def apply_customizers(stack: Any, targets: Iterable[str], search_path: Sequence[Path] = ()) -> None:
    """Call each customizer with ``stack``, in order."""
    for target in targets:
        customizer = load_customizer(target, search_path)
        try:
            customizer(stack)
        except LlamawsError:
            raise
        except Exception as exc:
            raise LlamawsError(
                f"stack customizer {target!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
