"""The AWS CDK CLI (the npm package ``aws-cdk``): found in the app's project, else
installed once into llamaws's cache; never globally.

Lookup: ``node_modules/aws-cdk`` in the app's folder or one of its parents (the team's
own pin), if it is at least :data:`CDK_CLI_VERSION`; else
``<cache>/cdk-cli/<version>`` (``$LLAMAWS_CACHE_DIR``, default
``$XDG_CACHE_HOME/llamaws`` or ``~/.cache/llamaws``), installed there with ``npm`` on
first use. The CLI runs with the ``node`` on ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llamaws.adapter.errors import LlamawsError

from .deploy_errors import NodeMissing

__all__ = ["CDK_CLI_VERSION", "CdkCli", "CdkRun", "cache_dir", "find_node", "locate_cdk_cli"]

CDK_CLI_VERSION = "2.1148.1"
"""The CLI llamaws installs (``package.json`` pins the same for the repository's tests)."""
PACKAGE = "aws-cdk"
TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class CdkRun:
    """How a CLI command ended: exit code and its last lines of output."""

    code: int
    tail: tuple[str, ...]


@dataclass(frozen=True)
class CdkCli:
    """One installed CDK CLI and the node that runs it."""

    node: str
    package_dir: Path
    version: str

    @property
    def script(self) -> Path:
        return self.package_dir / "bin" / "cdk"

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        on_line: Callable[[str], None] | None = None,
    ) -> CdkRun:
        """Run ``cdk ARGS``; each line of its output (stdout and stderr) to ``on_line``."""
        environment = {**env, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        process = subprocess.Popen(
            [self.node, str(self.script), *args],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = _ANSI.sub("", raw).rstrip()
                if not line.strip():
                    continue
                tail.append(line)
                if on_line is not None:
                    on_line(line)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return CdkRun(process.wait(), tuple(tail))


def find_node(environ: Mapping[str, str] | None = None) -> str:
    """The ``node`` on ``PATH``; :class:`NodeMissing` without one."""
    env = os.environ if environ is None else environ
    node = shutil.which("node", path=env.get("PATH"))
    if node is None:
        raise NodeMissing(
            "Node.js was not found: the AWS CDK CLI, which deploys the stack, runs on it",
            hint="Install Node.js 22 (20 works) so that `node` is on PATH, then run the "
            "command again.",
        )
    return node


def node_version(node: str) -> str:
    """``v22.23.5``-style version of ``node`` (``?`` when it does not say)."""
    try:
        done = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip() or "?"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """llamaws's own cache: ``$LLAMAWS_CACHE_DIR``, else ``$XDG_CACHE_HOME/llamaws``."""
    env = os.environ if environ is None else environ
    if env.get("LLAMAWS_CACHE_DIR"):
        return Path(env["LLAMAWS_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "llamaws"


def locate_cdk_cli(
    app_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    on_install: Callable[[str], None] | None = None,
) -> CdkCli:
    """The project's CDK CLI when it has a recent enough one, else llamaws's (installed
    into the cache on first use)."""
    env = os.environ if environ is None else environ
    node = find_node(env)
    for folder in [app_dir.resolve(), *app_dir.resolve().parents]:
        package = folder / "node_modules" / PACKAGE
        version = _installed_version(package)
        if version is not None and _version_key(version) >= _version_key(CDK_CLI_VERSION):
            return CdkCli(node, package, version)
    owned = cache_dir(env) / "cdk-cli" / CDK_CLI_VERSION
    package = owned / "node_modules" / PACKAGE
    if _installed_version(package) != CDK_CLI_VERSION:
        if on_install is not None:
            on_install(f"installing the AWS CDK CLI {CDK_CLI_VERSION} into {owned} (once)")
        _install(owned, env)
    return CdkCli(node, package, CDK_CLI_VERSION)


def _installed_version(package: Path) -> str | None:
    try:
        data = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (package / "bin" / "cdk").is_file():
        return None
    version = data.get("version")
    return str(version) if isinstance(version, str) else None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _install(owned: Path, env: Mapping[str, str]) -> None:
    """``npm install aws-cdk@VERSION`` into a fresh folder, then moved into place."""
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise NodeMissing(
            "npm was not found: llamaws installs the AWS CDK CLI with it",
            hint=f"Install Node.js with npm, or add the CLI to your project: "
            f"npm install --save-dev {PACKAGE}@{CDK_CLI_VERSION}",
        )
    owned.parent.mkdir(parents=True, exist_ok=True)
    staging = owned.parent / f".install-{CDK_CLI_VERSION}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    command = [
        *(npm, "install", "--prefix", str(staging), "--no-save", "--no-package-lock"),
        *("--no-audit", "--no-fund", "--loglevel=error", f"{PACKAGE}@{CDK_CLI_VERSION}"),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, env=dict(env)
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise LlamawsError(f"installing the AWS CDK CLI failed: {exc}") from None
    if done.returncode != 0 or _installed_version(staging / "node_modules" / PACKAGE) is None:
        shutil.rmtree(staging, ignore_errors=True)
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LlamawsError(
            f"installing the AWS CDK CLI {CDK_CLI_VERSION} with npm failed: {last[0]}",
            hint="Check access to the npm registry (npm config get registry), or add the "
            f"CLI to your project: npm install --save-dev {PACKAGE}@{CDK_CLI_VERSION}",
        )
    try:
        staging.rename(owned)
    except OSError:  # another llamaws installed it meanwhile (or a stale copy is there)
        if _installed_version(owned / "node_modules" / PACKAGE) != CDK_CLI_VERSION:
            shutil.rmtree(owned, ignore_errors=True)
            staging.rename(owned)
        else:
            shutil.rmtree(staging, ignore_errors=True)
