"""``llamaws serve``: the deployment's app, like ``llamactl serve``.

This process (the CLI, in llamaws's own environment) resolves the config, prepares
the app's environment (:mod:`.environments`), binds the port, runs the UI dev server
(or builds the preview) and supervises; the app server itself runs in the app's
environment with the app's folder as working directory (:mod:`.apphost`), restarted
on source changes (:mod:`.reload`). ``--lambda`` serves through the Lambda handler in
Lambda containers (the streaming runtime loop, or the RIE) that run in the same
environment and folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import tomllib
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from llamaws.adapter.errors import LlamawsError

from .options import LogFormat, Persistence, ServeOptions

if TYPE_CHECKING:  # imported when used: the app host starts before these are needed
    from llamaws.adapter.config import Deployment

    from .apphost import AppHost

__all__ = ["LogFormat", "Persistence", "ServeOptions", "prestart", "serve"]

logger = logging.getLogger("llamaws.serve")

LLAMA_CLOUD_KEY = "LLAMA_CLOUD_API_KEY"


_prestarted: list[AppHost] = []


def prestart(app_dir: Path) -> None:
    """Start the app host for ``app_dir`` now, before the CLI has parsed its flags.

    The host imports the server libraries (~0.3 s) while the CLI goes on; :func:`serve`
    takes it over when it serves that app with that interpreter (else it is stopped).
    Best effort: any problem leaves it to :func:`serve`.
    """
    with contextlib.suppress(Exception):
        config_dir = _config_dir(app_dir.expanduser().absolute())
        if config_dir is not None:
            from .apphost import AppHost
            from .environments import current_environment

            python = current_environment(config_dir).python
            _prestarted.append(AppHost(python, config_dir).start())


def _take_prestarted(python: Path, config_dir: Path) -> AppHost | None:
    """The prestarted host, if it runs ``python`` in ``config_dir`` (others are stopped)."""
    while _prestarted:
        host = _prestarted.pop()
        if host.python == python and host.cwd == config_dir and host.alive():
            return host
        host.close(now=True)
    return None


def _stop_prestarted() -> None:
    while _prestarted:
        _prestarted.pop().close(now=True)


def serve(options: ServeOptions) -> None:
    """Resolve, prepare and serve the deployment until interrupted."""
    from .environments import AppEnvironment, current_environment, ensure_environment

    try:
        options = options.absolute()
        if options.lambda_mode and options.persistence == "memory":
            raise LlamawsError(
                "--lambda keeps runs in DynamoDB: --persistence memory is not shared by containers",
                hint="Drop --persistence (a local engine is started) or pass "
                "--persistence dynamodb.",
            )
        config_dir = _config_dir(options.app_dir)
        sock = _bind(options.host, options.port)
    except BaseException:
        _stop_prestarted()
        raise
    options = dataclasses.replace(options, port=int(sock.getsockname()[1]))  # --port 0
    with _sigterm_as_interrupt(), _ui_status_file() as status_file:
        options = dataclasses.replace(options, ui_status_file=status_file)
        host: AppHost | None = None
        environment = AppEnvironment(Path(sys.executable), None)

        def start_host() -> None:
            nonlocal host
            if not options.lambda_mode and config_dir is not None:
                from .apphost import AppHost

                host = (
                    _take_prestarted(environment.python, config_dir)
                    or AppHost(environment.python, config_dir).start()
                )
                host.attach(options, sock)
            else:
                _stop_prestarted()

        def stop_host() -> None:
            nonlocal host
            if host is not None:
                host.close(now=True)
                host = None

        try:
            if config_dir is not None:
                # The host starts (or started) with the environment as it is and imports
                # the server libraries meanwhile; a stale environment stops it, is brought
                # up to date, and gets a new host.
                environment = current_environment(config_dir)
                start_host()
                checked = ensure_environment(
                    config_dir, install=options.install, before_change=stop_host
                )
                if checked.python != environment.python or host is None:
                    stop_host()
                    environment = checked
                    start_host()
            else:
                _stop_prestarted()
            deployment = _prepare(options)
        except BaseException:
            stop_host()
            raise
        _serve(options, deployment, sock, environment.python, host)


def _serve(
    options: ServeOptions,
    deployment: Deployment,
    sock: socket.socket,
    python: Path,
    host: AppHost | None,
) -> None:
    ui: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if deployment.config.ui is not None:  # the UI stack is not imported for nothing
        from .ui import ui_running

        ui = ui_running(
            deployment,
            preview=options.preview,
            install=options.install,
            ui_port=options.ui_port,
            server_port=options.port,
            status_file=options.ui_status_file,
        )
    with ui:
        if options.open_browser:
            landing = "ui/" if deployment.config.ui is not None else "docs"
            _open_when_ready(
                f"http://{_client_host(options.host)}:{options.port}/health",
                f"http://{options.host}:{options.port}{deployment.base_path}/{landing}",
            )
        if options.lambda_mode or host is None:
            _run_lambda(options, deployment, sock, python)
        elif options.reload:
            _serve_with_reload(options, deployment, host)
        else:
            _serve_once(host)


def _prepare(options: ServeOptions) -> Deployment:
    """The deployment, its warnings said and its variables set in this process."""
    from llamaws.adapter.config import resolve_deployment

    from .app_server import apply_environment

    deployment = resolve_deployment(options.app_dir)
    _warn_about_config(deployment)
    apply_environment(deployment, os.environ)
    return deployment


CONFIG_FILES = (
    "pyproject.toml", "llama_agents.toml", "llama_deploy.toml", "llama_agents.yaml",
    "llama_deploy.yaml", "llama_agents.yml", "llama_deploy.yml",
)  # fmt: skip


def _config_dir(path: Path) -> Path | None:
    """The folder of the app's config, when there is one (else resolution will say why)."""
    if path.is_file():
        return path.parent
    if path.is_dir() and any((path / name).is_file() for name in CONFIG_FILES):
        return path
    return None


def _warn_about_config(deployment: Deployment) -> None:
    """Say what the app's config asks for that this run cannot honour."""
    from llamaws.adapter.config import missing_env_files

    for path in missing_env_files(deployment):
        _warn(f"the env file {path} listed in env_files does not exist; it is skipped")
    requires = _requires_python(deployment.config_dir)
    if requires is not None:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        here = ".".join(map(str, sys.version_info[:3]))
        with contextlib.suppress(InvalidSpecifier):
            if not SpecifierSet(requires).contains(here, prereleases=True):
                _warn(
                    f"the app requires Python {requires} but llamaws runs on Python {here}; "
                    "the app runs on that one (install llamaws with a matching Python)"
                )
    if deployment.config.llama_cloud and not _has_llama_cloud_key(deployment):
        _warn(
            f"llama_cloud = true but {LLAMA_CLOUD_KEY} is not set (environment or env files): "
            "the app may not work. Set it, e.g. in .env"
        )


def _has_llama_cloud_key(deployment: Deployment) -> bool:
    from llamaws.adapter.config import resolve_environment

    with contextlib.suppress(LlamawsError):
        values = resolve_environment(deployment, {})
        if values.get(LLAMA_CLOUD_KEY):
            return True
    return bool(os.environ.get(LLAMA_CLOUD_KEY))


def _requires_python(config_dir: Path) -> str | None:
    pyproject = config_dir / "pyproject.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        with pyproject.open("rb") as handle:
            value = tomllib.load(handle).get("project", {}).get("requires-python")
        return value if isinstance(value, str) else None
    return None


def _warn(message: str) -> None:
    print(f"llamaws: warning: {message}.", file=sys.stderr, flush=True)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP; without it each request on a kept-alive connection waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise LlamawsError(
                f"port {port} on {host} is already in use",
                hint="Stop the other server or pass --port.",
            ) from exc
        raise LlamawsError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_once(host: AppHost) -> None:
    """``--no-reload``: the app host serves the app, in the app's environment and folder."""
    host.run_here()
    try:
        code = host.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        host.interrupt()
        with contextlib.suppress(Exception):
            host.process.wait(15) if host.process is not None else None
        host.close()
        raise
    if code not in (0, 130, -signal.SIGINT, -signal.SIGTERM):
        raise SystemExit(1)  # the app server printed its one Error line


def _serve_with_reload(options: ServeOptions, deployment: Deployment, host: AppHost) -> None:
    from .apphost import AppHost
    from .environments import ensure_environment
    from .reload import SourceFilter, serve_with_reload, watch_targets

    def start_host(interpreter: Path) -> AppHost:
        new = AppHost(interpreter, deployment.config_dir).start()
        assert host.sock is not None
        new.attach(options, host.sock)
        return new

    def refresh_environment() -> Path:
        return ensure_environment(deployment.config_dir, install=options.install).python

    serve_with_reload(
        host,
        start_host,
        watch_paths=watch_targets(deployment.config_dir, deployment.config.env_files),
        watch_filter=SourceFilter(deployment.config.env_files),
        health_url=f"http://{_client_host(options.host)}:{options.port}/health",
        announce=lambda: _announce(options, deployment),
        refresh_environment=refresh_environment if options.install else None,
    )


def _announce(options: ServeOptions, deployment: Deployment) -> None:
    url = f"http://{options.host}:{options.port}{deployment.base_path}/"
    print(f"llamaws: serving '{deployment.name}' at {url}", file=sys.stderr, flush=True)


def _run_lambda(
    options: ServeOptions, deployment: Deployment, sock: socket.socket, python: Path
) -> None:
    """``--lambda``: serve through ``llamaws.adapter.handler`` in Lambda containers (no reload)."""
    from llamaws.adapter.config import resolve_auth

    from .auth import announce_auth
    from .lambda_mode import lambda_settings, serve_lambda
    from .logs import configure_logging
    from .ui import emulator_routes

    settings, engine = lambda_settings(
        app_dir=options.app_dir,
        deployment_name=deployment.name,
        dynamodb_endpoint=options.dynamodb_endpoint,
        dynamodb_table=options.dynamodb_table,
        s3_bucket=options.s3_bucket,
        containers=options.lambda_containers,
        sweep_interval=options.sweep_interval,
        timeout=options.lambda_timeout,
        python=str(python),
        auth=resolve_auth(deployment, os.environ.get("LLAMAWS_AUTH")),
    )
    print(
        f"llamaws: --lambda: up to {settings.containers} container(s) running "
        f"{settings.handler}; table '{settings.table}' at {settings.dynamodb_endpoint}"
        f"{' (moto, for this session)' if engine else ''}",
        file=sys.stderr,
        flush=True,
    )
    _announce(options, deployment)
    try:
        announce_auth(
            settings,
            app_dir=options.app_dir,
            url=f"http://{_client_host(options.host)}:{options.port}",
            base_path=deployment.base_path,
            own_engine=engine is not None,
        )
        serve_lambda(
            settings,
            sock,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            log_config=configure_logging(options.log_level, options.log_format),
            extra_routes=emulator_routes(
                deployment,
                preview=options.preview,
                ui_port=options.ui_port,
                ui_status_file=options.ui_status_file,
            ),
        )
    finally:
        if engine is not None:
            engine.stop()


def _open_when_ready(health_url: str, url: str) -> None:
    """Open ``url`` in a browser once ``health_url`` answers 200 (gives up after 60 s)."""
    import httpx

    def wait_and_open() -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(health_url).status_code == 200:
                        webbrowser.open(url)
                        return
                time.sleep(0.1)

    threading.Thread(target=wait_and_open, daemon=True).start()


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _ui_status_file() -> Iterator[Path]:
    """A file where the UI side says why the dev server is not there (read by the proxy)."""
    fd, name = tempfile.mkstemp(prefix="llamaws-ui-", suffix=".json")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops serve like ^C does (the app host and the UI dev server with it)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
