"""Build a deployment's UI with its own package manager and the llamactl env contract.

Used by ``llamaws serve --preview`` (build, then serve the output statically), by
the emulator's dev server (same env and package-manager commands) and by
``llamaws build``. Unlike ``llamactl`` 0.10.4 this honours ``package_manager`` and
``build_command`` (it does not hard-code ``npm run build``) and passes the real UI
port to the build.

A build for publishing (``public=True``, the default) refuses to run when the LlamaCloud
API key would be baked into the public assets (:func:`public_secrets`); only the local
``serve --preview`` builds with it, as ``llamactl`` does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import LlamawsError

__all__ = [
    "DEFAULT_UI_PORT",
    "UIBuildError",
    "build_ui",
    "install_command",
    "install_ui_dependencies",
    "needs_install",
    "package_manager_env",
    "public_secrets",
    "pump_output",
    "run_script_command",
    "ui_base_path",
    "ui_env",
]

PUBLIC_ENV_PREFIXES = ("VITE_", "NEXT_PUBLIC_", "PUBLIC_")
"""Variables UI frameworks compile into the client code (Vite, Next.js, llamactl's own)."""
LLAMA_CLOUD_KEY = "LLAMA_CLOUD_API_KEY"
DEFAULT_UI_PORT = 4502
DEFAULT_SERVER_PORT = 4501

Printer = Callable[[str], None]
TAIL_LINES = 20
"""Output lines a failed UI command shows."""
_CONTRACT_VARIABLES = ("LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH", "LLAMA_DEPLOY_DEPLOYMENT_NAME")


def ui_base_path(deployment: Deployment) -> str:
    """Where the UI is served: ``/deployments/<name>/ui`` (no trailing slash)."""
    return f"{deployment.base_path}/ui"


def ui_env(
    deployment: Deployment,
    environ: Mapping[str, str],
    *,
    ui_port: int = DEFAULT_UI_PORT,
    server_port: int = DEFAULT_SERVER_PORT,
) -> dict[str, str]:
    """The environment of the UI's dev server and build (``llamactl``'s contract).

    ``environ`` plus ``PORT``, ``LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH``,
    ``LLAMA_DEPLOY_DEPLOYMENT_NAME``, ``LLAMA_DEPLOY_DEPLOYMENT_URL_ID``,
    ``LLAMA_DEPLOY_SERVER_PORT``; every ``PUBLIC_X`` is also exported as ``X``.
    """
    env = dict(environ)
    for key, value in environ.items():
        if key.startswith("PUBLIC_") and len(key) > len("PUBLIC_"):
            env[key.removeprefix("PUBLIC_")] = value
    env.update(
        {
            "PORT": str(ui_port),
            "LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH": ui_base_path(deployment),
            "LLAMA_DEPLOY_DEPLOYMENT_NAME": deployment.name,
            "LLAMA_DEPLOY_DEPLOYMENT_URL_ID": deployment.name,
            "LLAMA_DEPLOY_SERVER_PORT": str(server_port),
        }
    )
    ui = deployment.config.ui
    env.update(package_manager_env(ui.package_manager if ui is not None else "npm"))
    return env


def public_secrets(env: Mapping[str, str]) -> list[str]:
    """Variables of ``env`` that would put the LlamaCloud API key into client code.

    A public-prefixed (:data:`PUBLIC_ENV_PREFIXES`) variable named for the key (as
    ``llamactl serve`` sets them: ``VITE_LLAMA_CLOUD_API_KEY`` …) or holding its value.
    """
    key = env.get(LLAMA_CLOUD_KEY)
    return sorted(
        name
        for name, value in env.items()
        if name.startswith(PUBLIC_ENV_PREFIXES)
        and value
        and (name.endswith(LLAMA_CLOUD_KEY) or (key is not None and value == key))
    )


def package_manager_env(package_manager: str) -> dict[str, str]:
    """Extra variables a package manager needs here (corepack's pnpm/yarn shims)."""
    if package_manager in ("pnpm", "yarn") and shutil.which(package_manager) is None:
        return {"COREPACK_INTEGRITY_KEYS": "0", "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0"}
    return {}


def _executable(package_manager: str) -> list[str]:
    found = shutil.which(package_manager)
    if found:
        return [found]
    if package_manager in ("pnpm", "yarn"):
        corepack = shutil.which("corepack")
        if corepack:
            return [corepack, package_manager]
    raise LlamawsError(
        f"the UI's package manager '{package_manager}' is not installed",
        hint="Install it (or Node.js with corepack), or set ui.package_manager.",
    )


def run_script_command(package_manager: str, script: str) -> list[str]:
    """``<package manager> run <script>``."""
    return [*_executable(package_manager), "run", script]


def install_command(package_manager: str, ui_dir: Path) -> list[str]:
    """Install the UI's dependencies (``npm ci`` when a lockfile pins them)."""
    if package_manager == "npm" and (ui_dir / "package-lock.json").is_file():
        return [*_executable("npm"), "ci", "--no-audit", "--no-fund"]
    if package_manager == "npm":
        return [*_executable("npm"), "install", "--no-audit", "--no-fund"]
    return [*_executable(package_manager), "install"]


_LOCKFILES = ("package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lockb", "bun.lock")


def needs_install(ui_dir: Path) -> bool:
    """Whether ``node_modules`` is missing or older than ``package.json`` / the lockfile."""
    modules = ui_dir / "node_modules"
    if not modules.is_dir():
        return True
    installed = modules.stat().st_mtime
    for marker in (".package-lock.json", ".modules.yaml", ".yarn-state.yml"):
        if (modules / marker).is_file():
            installed = max(installed, (modules / marker).stat().st_mtime)
    sources = [ui_dir / "package.json", *(ui_dir / name for name in _LOCKFILES)]
    return any(p.is_file() and p.stat().st_mtime > installed for p in sources)


def pump_output(stream: IO[bytes], prefix: str) -> threading.Thread:
    """Copy a child's output to stderr, each line prefixed, from a daemon thread.

    Writes go straight to file descriptor 2 (no Python-level lock), so a process
    forked while a line is being written cannot inherit a held lock.
    """

    def pump() -> None:
        for line in iter(stream.readline, b""):
            os.write(2, prefix.encode() + line.rstrip(b"\r\n") + b"\n")
        stream.close()

    thread = threading.Thread(target=pump, name=f"pump{prefix.strip()}", daemon=True)
    thread.start()
    return thread


class UIBuildError(LlamawsError):
    """A UI command failed: its last output lines and how to run it by hand."""

    def __init__(self, message: str, *, hint: str, tail: Sequence[str]) -> None:
        super().__init__(message, hint=hint)
        self.tail = list(tail)


def _stderr_line(line: str) -> None:
    # Straight to file descriptor 2 (no Python-level lock), like pump_output.
    os.write(2, f"[ui] {line}\n".encode())


def _run(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    what: str,
    *,
    on_output: Printer | None = None,
    shown_env: Sequence[str] = (),
) -> None:
    """Run ``command``, each output line to ``on_output`` (default: stderr, prefixed).

    A failure raises :class:`UIBuildError` with the last lines and a command line
    that reproduces it (``shown_env`` names the variables it needs).
    """
    if on_output is None:
        print(f"llamaws: {what}: {' '.join(command)}", file=sys.stderr, flush=True)
    emit = on_output or _stderr_line
    process = subprocess.Popen(
        list(command), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    stream = process.stdout
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def pump() -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            emit(line)
        stream.close()

    # A thread, so a grandchild that keeps the pipe open cannot hold the build up.
    reader = threading.Thread(target=pump, name="ui-output", daemon=True)
    reader.start()
    code = process.wait()
    reader.join(timeout=5)
    if code != 0:
        assignments = [f"{name}={shlex.quote(env[name])}" for name in shown_env if name in env]
        reproduce = " ".join([*assignments, *map(shlex.quote, command)])
        raise UIBuildError(
            f"{what} failed (exit code {code}): {' '.join(command)}",
            hint=f"To see why: cd {shlex.quote(str(cwd))} && {reproduce}",
            tail=tail,
        )


def install_ui_dependencies(
    deployment: Deployment, environ: Mapping[str, str], *, on_output: Printer | None = None
) -> bool:
    """Install the UI's dependencies when :func:`needs_install`; True when it ran."""
    ui_dir = _ui_dir(deployment)
    assert deployment.config.ui is not None
    if not needs_install(ui_dir):
        return False
    manager = deployment.config.ui.package_manager
    env = {**environ, **package_manager_env(manager)}
    command = install_command(manager, ui_dir)
    _run(command, ui_dir, env, "installing UI dependencies", on_output=on_output)
    return True


def build_ui(
    deployment: Deployment,
    environ: Mapping[str, str],
    *,
    install: bool = True,
    ui_port: int = DEFAULT_UI_PORT,
    server_port: int = DEFAULT_SERVER_PORT,
    on_output: Printer | None = None,
    public: bool = True,
) -> Path:
    """Run ``<package manager> run <build_command>`` in the UI dir; returns the output dir.

    The output goes line by line to ``on_output`` (default: stderr, prefixed ``[ui]``);
    a failure raises :class:`UIBuildError`. ``public``: the output will be published;
    refuse to bake the LlamaCloud key into it.
    """
    ui_dir = _ui_dir(deployment)
    ui = deployment.config.ui
    assert ui is not None
    env = ui_env(deployment, environ, ui_port=ui_port, server_port=server_port)
    leaked = public_secrets(env) if public else []
    if leaked:
        raise LlamawsError(
            f"refusing to build the UI for publishing: {', '.join(leaked)} would bake the "
            "LlamaCloud API key into public assets, where anyone who loads the UI can read it",
            hint=f"Unset {', '.join(leaked)} for the build, and call LlamaCloud from the "
            f"workflows (the server side gets {LLAMA_CLOUD_KEY}).",
        )
    if install:
        install_ui_dependencies(deployment, environ, on_output=on_output)
    _run(
        run_script_command(ui.package_manager, ui.build_command),
        ui_dir,
        env,
        "building the UI",
        on_output=on_output,
        shown_env=_CONTRACT_VARIABLES,
    )
    output = deployment.ui_build_dir
    assert output is not None
    if not (output / "index.html").is_file():
        raise LlamawsError(
            f"the UI build wrote no {output / 'index.html'}",
            hint="Set ui.build_output_dir to where the build script writes its output.",
        )
    return output


def _ui_dir(deployment: Deployment) -> Path:
    ui_dir = deployment.ui_dir
    if ui_dir is None:
        raise LlamawsError(f"deployment '{deployment.name}' has no UI")
    if not (ui_dir / "package.json").is_file():
        raise LlamawsError(
            f"no package.json in the UI directory {ui_dir}",
            hint="Set ui.directory to the folder of the UI's package.json.",
        )
    return ui_dir
