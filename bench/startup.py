"""Startup time and throughput of ``llamaws serve`` against ``llamactl serve`` 0.10.4.

Run from the repo root::

    uv run python bench/startup.py [--runs 7] [--requests 200] [--concurrency 8]

It prints figures; it asserts nothing. What it measures, on fresh copies of
``examples/hello`` in a temporary directory (no ``workflows.db`` lands in the repo),
after one untimed start of each server:

- **time to first 200**: from just before the process is spawned to the first
  ``200`` of ``GET /deployments/hello/workflows`` (polled every 10 ms), for
  ``llamaws serve <app> --no-reload --no-open-browser --no-install --port P`` (the
  ``llamaws`` console script of the running venv) and
  ``llamactl serve hello --no-install --no-reload --no-open-browser --port P``,
  alternating which goes first, ``--runs`` runs each; medians and the ratio
  llamaws/llamactl (goal: <= 0.25). Both use their default persistence (SQLite
  ``workflows.db`` next to the config) and log level (INFO, access log on).
- **the app's own environment, warm** (this branch's default): ``llamaws serve <app>
  --no-reload --no-open-browser --port P`` without ``--no-install`` on one app copy kept
  across rounds (only its ``workflows.db`` is removed), so its ``.llamaws/venv`` is up
  to date after the untimed start: the start checks the environment's fingerprint and
  runs the app server with that environment's interpreter. Ratio against the
  ``--no-install`` line (the app in llamaws's own environment), and, with
  ``--baseline-root DIR`` (a checkout of another llamaws with its own ``.venv``, e.g.
  ``git archive main``), against that llamaws's ``--no-install`` start in the same
  rounds (goal: <= 1.2).
- **reload**: ``serve`` with reload on a fresh copy (the app's own environment; the
  baseline's ``--no-install``), ``--reloads`` edits of the workflow module, 1 s apart;
  each figure is the supervisor's own "reloaded in" (change on disk → ``/health``
  answers from the new app server).
- **floors**, measured in the same rounds: ``python -c pass`` and
  ``python -c "import llama_agents.server"`` with this venv's interpreter (run from a
  temp dir, like the servers), and a
  bare ``WorkflowServer`` (same workflow, SQLite store, Starlette mount at
  ``/deployments/hello``) on ``uvicorn.run``.
- **throughput**: ``POST /deployments/hello/workflows/greet/run
  {"start_event": {"name": "x"}}`` after a warm-up, ``--requests`` sequential
  requests from one ``httpx`` client, then the same number with ``--concurrency``
  requests in flight; completed runs per second and the ratio. The client shares the
  machine with the server, so treat the concurrent figure as a lower bound.

Bytecode: this machine exports ``PYTHONDONTWRITEBYTECODE=1`` and uv installs no
``.pyc`` files, so every process would compile every module it imports (about 2x the
start time). By default (``--bytecode cached``) the servers run without that variable
and with ``PYTHONPYCACHEPREFIX=.llamaws/bench/pycache``: bytecode is cached there
(the venvs and the repo are untouched), as on a machine where packages were installed
by pip or imported once. ``--bytecode none`` measures the compile-every-time case
(an empty cache prefix and ``PYTHONDONTWRITEBYTECODE=1``).

llamactl is installed by the script into its own venv (``.llamaws/bench/llamactl-venv``
unless ``--llamactl-venv``): ``uv venv`` + ``uv pip install llamactl==0.10.4`` when it
is missing (package registry only).

Making ``llamactl serve`` 0.10.4 run offline (read from
``llama_agents/appserver/app.py``): even with ``--no-install`` it re-executes the app
server as ``uv run --no-progress python -m llama_agents.appserver.app --proxy-ui
--deployment-file <app>`` with the app directory as working directory. That needs
``uv`` on ``PATH``, and a plain ``uv run`` would lock and sync ``<app>/.venv`` from the
app's ``pyproject.toml`` (registry access, ~seconds) into an environment that lacks
``llama-agents-appserver`` (``No module named llama_agents``). The bench therefore
runs it with:

- ``UV_PROJECT_ENVIRONMENT=<llamactl venv>``: ``uv run`` uses the llamactl venv as
  the project environment;
- ``UV_NO_SYNC=1`` and ``UV_OFFLINE=1``: no lock, no sync, no network; the venv is
  left untouched;
- ``PYTHONPATH=<app>/src``: the appserver imports ``hello.workflows`` as an installed
  module and, unsynced, the app package is not installed (it adds no path itself);
- ``VIRTUAL_ENV`` unset (``uv run`` of this script sets it; the child would warn that
  it does not match the project environment);
- ``PATH`` starting with ``<llamactl venv>/bin`` and the directory of the real ``uv``
  binary (``$UV``, set by ``uv run``), not a pyenv shim (~0.1 s per exec);
- working directory = the parent of the app directory: llamactl computes the app
  path relative to the working directory (``relative_to``), so it must contain it.

Every server runs in its own process group on a free loopback port; it is stopped
with SIGINT to the group (SIGKILL after 15 s), its port is checked free, and all
waits are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello"
APP_NAME = "hello"
BENCH_DIR = ROOT / ".llamaws" / "bench"
DEFAULT_LLAMACTL_VENV = BENCH_DIR / "llamactl-venv"
PYCACHE = BENCH_DIR / "pycache"
LLAMACTL_VERSION = "0.10.4"
READY_PATH = f"/deployments/{APP_NAME}/workflows"
RUN_PATH = f"/deployments/{APP_NAME}/workflows/greet/run"
RUN_BODY = {"start_event": {"name": "x"}}
POLL_INTERVAL = 0.01

BARE_SERVER = """
import contextlib, sys
import uvicorn
from llama_agents.server import SqliteWorkflowStore, WorkflowServer
from starlette.applications import Starlette
from starlette.routing import Mount
from hello.workflows import greet

port, db = int(sys.argv[1]), sys.argv[2]
server = WorkflowServer(workflow_store=SqliteWorkflowStore(db))
server.add_workflow("greet", greet)

@contextlib.asynccontextmanager
async def lifespan(app):
    async with server.contextmanager():
        yield

app = Starlette(routes=[Mount("/deployments/hello", app=server.app)], lifespan=lifespan)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


class BenchError(Exception):
    """A server that did not start, a request that failed: the bench stops."""


# ---------------------------------------------------------------------------
# Processes


_live: dict[int, subprocess.Popen[bytes]] = {}
_bytecode_env: dict[str, str] = {}
"""PYTHONPYCACHEPREFIX / PYTHONDONTWRITEBYTECODE for every child (``--bytecode``)."""


def say(line: str = "") -> None:
    print(line, flush=True)


@dataclass
class ServerSpec:
    """How to start one kind of server on a copy of the app."""

    label: str
    command: Callable[[Path, int], list[str]]
    env: Callable[[Path], dict[str, str]]
    keep_app: bool = False
    """Start every round on the same app copy (its environment stays warm)."""


@dataclass
class Running:
    """A started server process and where its output goes."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_after: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(_bytecode_env)
    # Loopback only: no proxy may sit between the bench and the servers.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def spawn(
    command: list[str], *, cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    _live[process.pid] = process
    return process


def start_server(spec: ServerSpec, app_dir: Path, client: httpx.Client, timeout: float) -> Running:
    """Spawn ``spec`` on ``app_dir`` and wait for the first 200 on the workflows list."""
    port = free_port()
    log = app_dir.parent / f"{spec.label.split()[0]}-{port}.log"
    command = spec.command(app_dir, port)
    env = spec.env(app_dir)
    started = time.perf_counter()
    process = spawn(command, cwd=app_dir.parent, env=env, log=log)
    running = Running(process, port, log)
    deadline = started + timeout
    while True:
        try:
            response = client.get(f"{running.url}{READY_PATH}")
            if response.status_code == 200:
                running.ready_after = time.perf_counter() - started
                return running
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            kill_group(process)
            raise BenchError(f"{spec.label} exited with {process.returncode}:\n{tail(log)}")
        if time.perf_counter() > deadline:
            stop(running)
            raise BenchError(f"{spec.label} not ready after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(POLL_INTERVAL)


def stop(running: Running) -> None:
    """SIGINT the server's process group, SIGKILL it if it lingers; check the port."""
    kill_group(running.process)
    deadline = time.monotonic() + 5
    while not port_free(running.port):
        if time.monotonic() > deadline:
            raise BenchError(f"port {running.port} still in use after the server stopped")
        time.sleep(0.05)


def kill_group(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=5)
    # Children (uv, the appserver under llamactl) may outlive the leader briefly.
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    _live.pop(process.pid, None)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kill_all() -> None:
    for process in list(_live.values()):
        kill_group(process, grace=5.0)


def tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return "(no output)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------
# The servers


def uv_binary() -> str:
    """The real ``uv`` binary (``$UV`` under ``uv run``), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise BenchError("uv is needed (to install llamactl and for `llamactl serve` itself)")
    return found


def ensure_llamactl(venv: Path) -> Path:
    """``venv/bin/llamactl`` at version 0.10.4, creating the venv if needed."""
    python = venv / "bin" / "python"
    llamactl = venv / "bin" / "llamactl"
    if llamactl.exists() and python.exists() and installed_version(python) == LLAMACTL_VERSION:
        return llamactl
    uv = uv_binary()
    say(f"installing llamactl=={LLAMACTL_VERSION} into {venv} ...")
    env = base_env()
    if not python.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run(
            [uv, "venv", "--quiet", "--python", version, str(venv)],
            check=True, env=env, timeout=600,
        )  # fmt: skip
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), f"llamactl=={LLAMACTL_VERSION}"],
        check=True, env=env, timeout=1200,
    )  # fmt: skip
    if installed_version(python) != LLAMACTL_VERSION:
        raise BenchError(f"llamactl {LLAMACTL_VERSION} not importable from {python}")
    return llamactl


def installed_version(python: Path) -> str | None:
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('llamactl'))"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout.strip() if result.returncode == 0 else None


def llamaws_command() -> list[str]:
    script = Path(sys.executable).parent / "llamaws"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llamaws.cli.main"]


def warm_env_spec() -> ServerSpec:
    """``llamaws serve`` with the app's own environment (created by the untimed start)."""

    def command(app: Path, port: int) -> list[str]:
        flags = ["--no-reload", "--no-open-browser", "--port", str(port)]
        return [*llamaws_command(), "serve", str(app), *flags]

    return ServerSpec(
        "llamaws serve --no-reload --no-open-browser (app env, warm)",
        command,
        lambda app: base_env(),
        keep_app=True,
    )


def baseline_spec(root: Path) -> ServerSpec:
    """The ``--no-install`` start of the llamaws checked out at ``root`` (its own .venv)."""
    script = root / ".venv" / "bin" / "llamaws"
    if not script.exists():
        raise BenchError(f"no {script}: run `uv sync` in {root} first")

    def command(app: Path, port: int) -> list[str]:
        flags = ["--no-reload", "--no-open-browser", "--no-install", "--port", str(port)]
        return [str(script), "serve", str(app), *flags]

    return ServerSpec(
        f"baseline ({display(root)}) serve --no-reload --no-open-browser --no-install",
        command,
        lambda app: base_env(),
    )


def specs(llamactl: Path) -> tuple[ServerSpec, ServerSpec, ServerSpec]:
    venv = llamactl.parent.parent
    uv_dir = str(Path(uv_binary()).parent)

    def llamaws_env(app_dir: Path) -> dict[str, str]:
        return base_env()

    def llamactl_env(app_dir: Path) -> dict[str, str]:
        env = base_env()
        env.update(
            UV_PROJECT_ENVIRONMENT=str(venv),
            UV_NO_SYNC="1",
            UV_OFFLINE="1",
            PYTHONPATH=str(app_dir / "src"),
            PATH=os.pathsep.join([str(venv / "bin"), uv_dir, env.get("PATH", "")]),
        )
        return env

    def bare_env(app_dir: Path) -> dict[str, str]:
        env = base_env()
        env["PYTHONPATH"] = str(app_dir / "src")
        return env

    def llamaws_cmd(app: Path, port: int) -> list[str]:
        flags = ["--no-reload", "--no-open-browser", "--no-install", "--port", str(port)]
        return [*llamaws_command(), "serve", str(app), *flags]

    def llamactl_cmd(app: Path, port: int) -> list[str]:
        # Relative to the working directory (the app's parent), as llamactl requires.
        flags = ["--no-install", "--no-reload", "--no-open-browser", "--port", str(port)]
        return [str(llamactl), "serve", app.name, *flags]

    llamaws = ServerSpec(
        "llamaws serve --no-reload --no-open-browser --no-install", llamaws_cmd, llamaws_env
    )
    llamactl_spec = ServerSpec(
        "llamactl serve --no-install --no-reload --no-open-browser", llamactl_cmd, llamactl_env
    )
    bare = ServerSpec(
        "bare WorkflowServer on uvicorn (SQLite, same workflow)",
        lambda app, port: [sys.executable, "-c", BARE_SERVER, str(port), str(app / "workflows.db")],
        bare_env,
    )
    return llamaws, llamactl_spec, bare


@contextlib.contextmanager
def app_copies() -> Iterator[Callable[[], Path]]:
    """Fresh copies of examples/hello (no database, no caches) in one temp dir."""
    with tempfile.TemporaryDirectory(prefix="llamaws-bench-") as tmp:
        counter = iter(range(1_000_000))

        def fresh() -> Path:
            parent = Path(tmp) / f"run-{next(counter)}"
            target = parent / APP_NAME
            shutil.copytree(
                EXAMPLE, target, ignore=shutil.ignore_patterns("workflows.db*", "__pycache__", ".*")
            )
            return target

        yield fresh


# ---------------------------------------------------------------------------
# Measurements


@dataclass
class Samples:
    label: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self, width: int) -> str:
        values = " ".join(f"{v:.2f}" for v in self.values)
        return (
            f"  {self.label:<{width}} {self.median:7.3f} {min(self.values):7.3f} "
            f"{max(self.values):7.3f}   [{values}]"
        )


def time_command(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, check=True, timeout=120, stdout=subprocess.DEVNULL
    )  # fmt: skip
    return time.perf_counter() - started


def check_run(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise BenchError(f"run answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    if body.get("status") != "completed" or body["result"]["value"]["result"] != "Hello, x!":
        raise BenchError(f"unexpected run result: {json.dumps(body)[:300]}")


def sequential_rate(client: httpx.Client, url: str, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        check_run(client.post(url, json=RUN_BODY))
    return requests / (time.perf_counter() - started)


async def concurrent_rate(url: str, requests: int, concurrency: int) -> float:
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(trust_env=False, timeout=60, limits=limits) as client:
        # Open the connections before the clock starts.
        await asyncio.gather(*(client.get(url.rsplit("/", 2)[0]) for _ in range(concurrency)))

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                check_run(await client.post(url, json=RUN_BODY))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def measure_startup(
    args: argparse.Namespace,
    servers: tuple[ServerSpec, ServerSpec, ServerSpec],
    extra: list[ServerSpec],
    fresh: Callable[[], Path],
    client: httpx.Client,
) -> tuple[list[Samples], list[Samples]]:
    llamaws, llamactl, bare = servers
    startup = {spec.label: Samples(spec.label) for spec in (*servers, *extra)}
    kept: dict[str, Path] = {spec.label: fresh() for spec in extra if spec.keep_app}
    python_pass = Samples("python -c pass")
    python_import = Samples('python -c "import llama_agents.server"')
    env = base_env()
    floor_commands = [
        (python_pass, [sys.executable, "-c", "pass"]),
        (python_import, [sys.executable, "-c", "import llama_agents.server"]),
    ]

    def app_for(spec: ServerSpec) -> Path:
        if spec.label not in kept:
            return fresh()
        app = kept[spec.label]
        for database in app.glob("workflows.db*"):
            database.unlink()
        return app

    # One untimed start of each: fills the bytecode cache, first-run files (llamactl),
    # the app's environment (the warm-environment line).
    for spec in (*servers, *extra):
        stop(start_server(spec, app_for(spec), client, args.timeout))
    for _, command in floor_commands:
        time_command(command, env, fresh().parent)
    for round_ in range(args.runs):
        order = [llamaws, *extra, llamactl, bare]
        if round_ % 2:
            order = [llamactl, *reversed(extra), llamaws, bare]
        for spec in order:
            running = start_server(spec, app_for(spec), client, args.timeout)
            stop(running)
            startup[spec.label].values.append(running.ready_after)
        for samples, command in floor_commands:
            samples.values.append(time_command(command, env, fresh().parent))
        say(
            f"  round {round_ + 1}/{args.runs}: "
            + ", ".join(f"{s.label.split()[0]} {startup[s.label].values[-1]:.2f} s" for s in order)
        )
    return [startup[llamaws.label], startup[llamactl.label]] + [
        startup[spec.label] for spec in extra
    ], [python_pass, python_import, startup[bare.label]]


def measure_throughput(
    args: argparse.Namespace, spec: ServerSpec, fresh: Callable[[], Path], client: httpx.Client
) -> tuple[float, float]:
    running = start_server(spec, fresh(), client, args.timeout)
    try:
        url = f"{running.url}{RUN_PATH}"
        for _ in range(args.warmup):
            check_run(client.post(url, json=RUN_BODY))
        sequential = sequential_rate(client, url, args.requests)
        concurrent = asyncio.run(concurrent_rate(url, args.requests, args.concurrency))
    finally:
        stop(running)
    return sequential, concurrent


def reload_command(root: Path | None) -> Callable[[Path, int], list[str]]:
    """``serve`` with reload (the default) from this checkout or ``root``'s .venv."""

    def command(app: Path, port: int) -> list[str]:
        base = [str(root / ".venv" / "bin" / "llamaws")] if root else llamaws_command()
        flags = ["--no-open-browser", "--port", str(port)]
        return [*base, "serve", str(app), *flags, *(["--no-install"] if root else [])]

    return command


def measure_reloads(
    label: str, command: Callable[[Path, int], list[str]], app: Path, count: int
) -> Samples:
    """Touch the workflow module ``count`` times; the supervisor's "reloaded in" figures.

    Each figure is the supervisor's own: from the change on disk to ``/health``
    answering from the new app server.
    """
    samples = Samples(label)
    port = free_port()
    log = app.parent / f"reload-{port}.log"
    process = spawn(command(app, port), cwd=app.parent, env=base_env(), log=log)
    try:
        with httpx.Client(trust_env=False, timeout=5) as client:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{port}{READY_PATH}").status_code == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError(f"{label} did not start:\n{tail(log)}")
                time.sleep(POLL_INTERVAL)
        source = app / "src" / APP_NAME / "workflows.py"
        for index in range(count):
            seen = log.read_text().count("reloaded in")
            time.sleep(1.0)  # past the watcher's debounce of the previous change
            source.write_text(source.read_text() + f"\n# edit {index}\n")
            deadline = time.monotonic() + 60
            while log.read_text().count("reloaded in") == seen:
                if time.monotonic() > deadline:
                    raise BenchError(f"{label}: no reload after an edit:\n{tail(log)}")
                time.sleep(0.05)
            line = [x for x in log.read_text().splitlines() if "reloaded in" in x][-1]
            samples.values.append(float(line.split("reloaded in ")[1].split()[0]))
    finally:
        kill_group(process)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="startup runs per server (7)")
    parser.add_argument("--requests", type=int, default=200, help="timed runs per variant (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first (20)")
    parser.add_argument("--concurrency", type=int, default=8, help="in-flight requests (8)")
    parser.add_argument("--timeout", type=float, default=90.0, help="max seconds to first 200")
    parser.add_argument(
        "--llamactl-venv", type=Path, default=DEFAULT_LLAMACTL_VENV,
        help=f"venv holding llamactl {LLAMACTL_VERSION}; created if missing "
        "(default .llamaws/bench/llamactl-venv)",
    )  # fmt: skip
    parser.add_argument("--reloads", type=int, default=5, help="timed reloads per server (5)")
    parser.add_argument(
        "--baseline-root", type=Path, default=None,
        help="a checkout of another llamaws (with its .venv) to time in the same rounds",
    )  # fmt: skip
    parser.add_argument(
        "--bytecode", choices=("cached", "none"), default="cached",
        help="cached: .pyc kept in .llamaws/bench/pycache (default); none: compile every time",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.runs < 1 or args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--runs, --requests and --concurrency must be >= 1, --warmup >= 0")

    llamactl = ensure_llamactl(args.llamactl_venv.resolve())
    servers = specs(llamactl)
    llamaws, llamactl_spec, _ = servers
    extra = [warm_env_spec()]
    if args.baseline_root is not None:
        extra.append(baseline_spec(args.baseline_root.resolve()))
    timeout = httpx.Timeout(5.0, read=60.0)
    try:
        with contextlib.ExitStack() as stack:
            if args.bytecode == "cached":
                PYCACHE.mkdir(parents=True, exist_ok=True)
                _bytecode_env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
            else:
                empty = stack.enter_context(tempfile.TemporaryDirectory(prefix="llamaws-nopyc-"))
                _bytecode_env.update(PYTHONPYCACHEPREFIX=empty, PYTHONDONTWRITEBYTECODE="1")
            fresh = stack.enter_context(app_copies())
            client = stack.enter_context(httpx.Client(trust_env=False, timeout=timeout))
            say(
                f"llamaws startup bench: examples/{APP_NAME}, {args.runs} runs each, "
                f"alternating; bytecode {args.bytecode}; {os.cpu_count()} CPUs, load "
                f"{os.getloadavg()[0]:.2f}; Python {platform.python_version()}; "
                f"llamactl {LLAMACTL_VERSION} from {display(llamactl.parent.parent)}"
            )
            servers_s, floors = measure_startup(args, servers, extra, fresh, client)
            throughput = {
                spec.label: measure_throughput(args, spec, fresh, client)
                for spec in (llamaws, llamactl_spec)
            }
            reloads = [
                measure_reloads(
                    "llamaws serve (app env)", reload_command(None), fresh(), args.reloads
                )
            ]
            if args.baseline_root is not None:
                root = args.baseline_root.resolve()
                label = f"baseline ({display(root)}) --no-install"
                reloads.append(
                    measure_reloads(label, reload_command(root), fresh(), args.reloads)
                )
    finally:
        kill_all()

    width = max(len(s.label) for s in (*servers_s, *floors))
    say(f"  (load average at the end: {os.getloadavg()[0]:.2f})")
    say()
    say(f"time to first 200 on GET {READY_PATH} (s)")
    say(f"  {'':<{width}}  median     min     max   runs")
    for samples in servers_s:
        say(samples.row(width))
    ratio = servers_s[0].median / servers_s[1].median
    verdict = "met" if ratio <= 0.25 else "not met"
    say(f"  ratio llamaws/llamactl (medians): {ratio:.3f}  (goal <= 0.25: {verdict})")
    warm = servers_s[2]
    say(f"  ratio app env (warm) / llamaws --no-install (medians): "
        f"{warm.median / servers_s[0].median:.3f}")  # fmt: skip
    if len(servers_s) > 3:
        ratio = warm.median / servers_s[3].median
        verdict = "met" if ratio <= 1.2 else "not met"
        say(f"  ratio app env (warm) / baseline --no-install (medians): {ratio:.3f}  "
            f"(goal <= 1.2: {verdict})")  # fmt: skip
    say()
    say("reload: change on disk → /health answers from the new app server (s)")
    for samples in reloads:
        say(samples.row(width))
    if len(reloads) > 1:
        say(f"  ratio app env / baseline (medians): {reloads[0].median / reloads[1].median:.3f}")
    say()
    say("floors (same rounds)")
    for samples in floors:
        say(samples.row(width))
    say()
    seq_ws, conc_ws = throughput[llamaws.label]
    seq_ctl, conc_ctl = throughput[llamactl_spec.label]
    say(
        f"throughput: POST {RUN_PATH} {json.dumps(RUN_BODY)}, runs/s over {args.requests} "
        f"requests after {args.warmup} warm-up"
    )
    say(f"  {'':<10} {'sequential':>12} {f'concurrency {args.concurrency}':>16}")
    say(f"  {'llamaws':<10} {seq_ws:12.1f} {conc_ws:16.1f}")
    say(f"  {'llamactl':<10} {seq_ctl:12.1f} {conc_ctl:16.1f}")
    say(f"  {'ratio':<10} {seq_ws / seq_ctl:12.2f} {conc_ws / conc_ctl:16.2f}  (llamaws/llamactl)")
    return 0


def display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        kill_all()
        sys.exit(130)
