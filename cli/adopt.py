"""``llamaws init --adopt``: add ``[tool.llamaws]`` to an existing llamactl project.

The table goes where llamaws reads it (:func:`llamaws.adapter.config.read_settings_table`):
the deployment's TOML config file (``pyproject.toml``, ``llama_deploy.toml``, …), else
the app's ``pyproject.toml`` (created, holding only that table, when a YAML config has
none). The table is appended as text, so every other byte of the file stays as it
was; the result is parsed before it is written.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.errors import ConfigError
from llamaws.infra.settings import Settings

__all__ = ["ADOPTED_KEYS", "ADOPT_DEFAULTS", "Adoption", "adopt"]

ADOPTED_KEYS = ("auth", "memory_mb", "timeout_seconds")
"""The settings people change first: adopt writes them at their defaults (the rest of
the keys, with theirs, are in docs/configuration.md)."""

ADOPT_DEFAULTS: dict[str, object] = {
    key: Settings.model_fields[key].default for key in ADOPTED_KEYS
}
"""What adopt writes: :data:`ADOPTED_KEYS` at the defaults of :class:`Settings`."""


@dataclass(frozen=True)
class Adoption:
    """What adopt did."""

    name: str
    """The deployment."""
    path: Path
    """The file that holds ``[tool.llamaws]``."""
    changed: bool
    """False when the table was there already."""


def adopt(app_dir: Path) -> Adoption:
    """Add ``[tool.llamaws]`` with :data:`ADOPT_DEFAULTS` to the project at ``app_dir``."""
    deployment = resolve_deployment(app_dir)
    config = deployment.config_file
    pyproject = deployment.config_dir / "pyproject.toml"
    for candidate in dict.fromkeys([config, pyproject]):
        if candidate.suffix == ".toml" and candidate.is_file():
            tool = _load(candidate).get("tool", {})
            if isinstance(tool, dict) and "llamaws" in tool:
                return Adoption(deployment.name, candidate, changed=False)
    target = config if config.suffix == ".toml" else pyproject
    text = target.read_text(encoding="utf-8") if target.is_file() else ""
    separator = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    block = "[tool.llamaws]\n# llamaws's settings for the AWS stack (docs/configuration.md)\n"
    block += "".join(f"{key} = {_toml_value(value)}\n" for key, value in ADOPT_DEFAULTS.items())
    adopted = text + separator + block
    try:
        tomllib.loads(adopted)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{target}: cannot add [tool.llamaws] ({exc})",
            hint="Add the table by hand (docs/configuration.md lists its keys).",
        ) from exc
    target.write_text(adopted, encoding="utf-8")
    return Adoption(deployment.name, target, changed=True)


def _load(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _toml_value(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)
