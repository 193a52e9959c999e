"""What ``llamaws serve`` was asked for, as one value the app server process also gets.

The CLI process builds :class:`ServeOptions` from its flags; the app server runs in
the app's own environment (another interpreter) and receives the same value as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["LogFormat", "Persistence", "ServeOptions"]

Persistence = Literal["memory", "local", "dynamodb"]
LogFormat = Literal["console", "json"]


@dataclass(frozen=True)
class ServeOptions:
    """What ``llamaws serve`` was asked for (the CLI flags)."""

    app_dir: Path = Path(".")
    host: str = "127.0.0.1"
    port: int = 4501
    persistence: Persistence = "local"
    local_persistence_path: Path | None = None
    dynamodb_endpoint: str | None = None
    dynamodb_table: str | None = None
    s3_bucket: str | None = None
    log_level: str = "INFO"
    log_format: LogFormat = "console"
    reload: bool = True
    open_browser: bool = True
    install: bool = True
    idle_timeout: float = 60.0
    ui_port: int | None = None
    """The UI dev server's port; ``None``: the config's ``ui.proxy_port`` (4502)."""
    preview: bool = False
    """Build the UI and serve it statically instead of running its dev server."""
    lambda_mode: bool = False
    """Every request through the real Lambda handler in RIE containers (``--lambda``)."""
    lambda_containers: int = 2
    """``--lambda``: most containers running at once (each serves one invocation)."""
    lambda_timeout: float = 60.0
    """``--lambda``: the function timeout in seconds."""
    sweep_interval: float = 60.0
    """``--lambda``: seconds between sweep invocations (0: none)."""
    request_limit: bool = True
    """Refuse request bodies over Lambda's 6 MB limit, as the deployed app does."""
    verbose: bool = False
    """``llamaws -v``: tracebacks instead of one ``Error:`` line."""
    ui_status_file: Path | None = None
    """Where the supervisor records why the UI dev server is not running (if it is not)."""

    def absolute(self) -> ServeOptions:
        """The same options with paths made absolute (the app server runs elsewhere)."""
        return dataclasses.replace(
            self,
            app_dir=self.app_dir.expanduser().absolute(),
            local_persistence_path=(
                self.local_persistence_path.expanduser().absolute()
                if self.local_persistence_path is not None
                else None
            ),
        )

    def to_json(self) -> str:
        """These options as JSON (paths as strings)."""
        return json.dumps(
            {
                name: str(value) if isinstance(value, Path) else value
                for name, value in dataclasses.asdict(self).items()
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """The options :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        for name in ("app_dir", "local_persistence_path", "ui_status_file"):
            if data.get(name) is not None:
                data[name] = Path(data[name])
        return cls(**data)
