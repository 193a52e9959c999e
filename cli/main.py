"""``llamaws``: parse, call ``local`` / ``builder`` / ``infra``, render.

Commands import what they need when they run, so ``llamaws --help`` and the
start of ``llamaws serve`` stay fast. Every error is one line ``Error: … what to do``
on stderr: exit 1, or 2 for bad usage (an unknown option, a value out of range);
``llamaws -v`` shows tracebacks. Every command's ``--help`` (or ``-h``) shows its
defaults and an example (``epilog=example(...)``).
"""

from __future__ import annotations

import gc
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def example(*lines: str) -> str:
    """A command's help epilog: one example invocation (or a few)."""
    return "Example:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


app = typer.Typer(
    name="llamaws",
    help="Run LlamaDeploy apps in your own AWS account; develop them locally.",
    epilog=example("llamaws serve examples/hello"),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
)


class PersistenceOption(StrEnum):
    memory = "memory"
    local = "local"
    dynamodb = "dynamodb"


class LogFormatOption(StrEnum):
    console = "console"
    json = "json"


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"llamaws {version('llamaws')}")
        except PackageNotFoundError:
            print("llamaws (not installed: running from a checkout)")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    _state["verbose"] = verbose


_state: dict[str, bool] = {"verbose": False}


@app.command(
    epilog=example(
        "llamaws serve examples/hello --port 4600 --no-open-browser",
        "llamaws serve examples/hitl --persistence dynamodb "
        "--dynamodb-endpoint http://127.0.0.1:5000",
    )
)
def serve(
    app_dir: Annotated[
        Path, typer.Argument(help="App directory or deployment config file.")
    ] = Path("."),
    port: Annotated[int, typer.Option(help="Port of the app server (0: any free one).")] = 4501,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    persistence: Annotated[
        PersistenceOption,
        typer.Option(
            help="Where runs are kept: memory, local (SQLite next to the config) or dynamodb."
        ),
    ] = PersistenceOption.local,
    local_persistence_path: Annotated[
        Path | None, typer.Option(help="SQLite file (or directory) for --persistence local.")
    ] = None,
    dynamodb_endpoint: Annotated[
        str | None,
        typer.Option(
            help="DynamoDB endpoint for --persistence dynamodb (a local engine: the table "
            "and bucket are created when missing).",
            envvar="AWS_ENDPOINT_URL_DYNAMODB",
        ),
    ] = None,
    dynamodb_table: Annotated[
        str | None, typer.Option(help="Table for --persistence dynamodb (llamaws-<name>).")
    ] = None,
    s3_bucket: Annotated[
        str | None, typer.Option(help="S3 bucket for DynamoDB items over 400 KB.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    log_format: Annotated[LogFormatOption, typer.Option(help="console or json.")] = (
        LogFormatOption.console
    ),
    reload: Annotated[bool, typer.Option(help="Restart the app server on source changes.")] = True,
    open_browser: Annotated[bool, typer.Option(help="Open the app in a browser.")] = True,
    install: Annotated[
        bool, typer.Option(help="Install the app's missing Python and UI dependencies first.")
    ] = True,
    ui_port: Annotated[
        int | None,
        typer.Option(help="Port of the UI dev server [default: ui.proxy_port, else 4502]."),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Build the UI and serve it statically.")
    ] = False,
    lambda_mode: Annotated[
        bool,
        typer.Option(
            "--lambda",
            help="Send every request through the real Lambda handler (its streaming loop, "
            "or RIE + awslambdaric with [tool.llamaws] streaming = false; "
            "API Gateway v2 events, DynamoDB; a moto server is started without "
            "--dynamodb-endpoint). No reload.",
        ),
    ] = False,
    lambda_containers: Annotated[
        int, typer.Option(help="--lambda: most Lambda containers at once.", min=1)
    ] = 2,
    lambda_timeout: Annotated[
        int, typer.Option(help="--lambda: the function timeout in seconds.", min=1, max=900)
    ] = 60,
    sweep_interval: Annotated[
        float, typer.Option(help="--lambda: seconds between sweep invocations (0: none).", min=0)
    ] = 60.0,
    request_limit: Annotated[
        bool,
        typer.Option(
            help="Refuse request bodies over Lambda's 6 MB limit (413), as the deployed app "
            "does; --no-request-limit lifts it locally (not with --lambda)."
        ),
    ] = True,
) -> None:
    """Serve a deployment on http://127.0.0.1:4501, like `llamactl serve`."""
    from llamaws.local.serve import ServeOptions
    from llamaws.local.serve import serve as run_serve

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}", code=2)
    if not 0 <= port <= 65535:
        _fail(f"--port must be a port number from 1 to 65535 (0: any free one), not {port}", code=2)
    if ui_port is not None and not 1 <= ui_port <= 65535:
        _fail(f"--ui-port must be a port number from 1 to 65535, not {ui_port}", code=2)
    options = ServeOptions(
        app_dir=app_dir,
        host=host,
        port=port,
        persistence=persistence.value,
        local_persistence_path=local_persistence_path,
        dynamodb_endpoint=dynamodb_endpoint,
        dynamodb_table=dynamodb_table,
        s3_bucket=s3_bucket,
        log_level=log_level.upper(),
        log_format=log_format.value,
        reload=reload,
        open_browser=open_browser,
        install=install,
        ui_port=ui_port,
        preview=preview,
        idle_timeout=_idle_timeout(),
        lambda_mode=lambda_mode,
        lambda_containers=lambda_containers,
        lambda_timeout=float(lambda_timeout),
        sweep_interval=sweep_interval,
        verbose=_state["verbose"],
        request_limit=request_limit,
    )
    if not gc.isenabled():
        # main() paused the cyclic GC for the imports above: keep what they built out
        # of every later collection (freeze), then collect as usual while serving.
        gc.freeze()
        gc.enable()
    _guarded(lambda: run_serve(options))


def _idle_timeout() -> float:
    """Seconds before a waiting run is released from memory (``LLAMAWS_IDLE_TIMEOUT``)."""
    import os

    raw = os.environ.get("LLAMAWS_IDLE_TIMEOUT", "60")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        _fail(f"LLAMAWS_IDLE_TIMEOUT must be a positive number of seconds, not {raw!r}", code=2)
    return value


def _guarded(action: object) -> None:
    """Run ``action``; llamaws errors become one line and exit 1."""
    from llamaws.adapter.errors import LlamawsError

    assert callable(action)
    try:
        action()
    except LlamawsError as exc:
        if _state["verbose"]:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _fail(message: str, code: int = 1) -> None:
    print(f"Error: {message}", file=sys.stderr)
    raise typer.Exit(code)


from llamaws.cli.dynamodb import app as dynamodb_app  # noqa: E402 - sub-apps after the root commands
from llamaws.cli.tokens import app as tokens_app  # noqa: E402

app.add_typer(dynamodb_app, name="dynamodb")
app.add_typer(tokens_app, name="tokens")
from llamaws.cli.ui import app as ui_app  # noqa: E402

app.add_typer(ui_app, name="ui")
from llamaws.cli.keys import app as keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")
app.command("synth", epilog=example("llamaws synth examples/hello --strict"))(
    __import__("llamaws.cli.synth", fromlist=["synth"]).synth
)
__import__("llamaws.cli.deploy", fromlist=["register"]).register(app)
__import__("llamaws.cli.status", fromlist=["register"]).register(app)
__import__("llamaws.cli.logs", fromlist=["register"]).register(app)
app.add_typer(__import__("llamaws.cli.secrets", fromlist=["app"]).app, name="secrets")
app.command(
    "init",
    epilog=example(
        "llamaws init approvals --template hitl --name approvals --yes",
        "llamaws init --adopt path/to/llamactl-app",
    ),
)(__import__("llamaws.cli.init", fromlist=["init"]).init)


def main() -> None:
    """Console-script entry point."""
    if [arg for arg in sys.argv[1:3] if arg not in ("-v", "--verbose")][:1] == ["serve"]:
        # Starting a server allocates many long-lived objects (modules, pydantic
        # schemas) and little garbage: collecting them costs ~10% of the start.
        # serve() turns the collector back on before serving.
        gc.disable()
        _prestart_serve(sys.argv[sys.argv.index("serve") + 1 :])
    try:
        # Not standalone: usage errors come back here and are printed as one line.
        code = app(standalone_mode=False, prog_name="llamaws")
    except typer.TyperException as exc:
        code = _usage_error(exc)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def _prestart_serve(args: list[str]) -> None:
    """Start ``serve``'s app host before typer parses (and imports pydantic): ~0.1 s.

    Only the app directory is read here, by the command's own parser without type
    conversion; anything unexpected leaves the start to ``serve`` itself.
    """
    try:
        command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
        parser = command.make_parser(command.context_class(command, info_name="serve"))
        values, _, _ = parser.parse_args(args=list(args))
        if any(name in ("help", "lambda_mode") for name in values):
            return
        app_dir = values.get("app_dir") or "."
    except Exception:
        return
    from llamaws.local.serve import prestart

    prestart(Path(str(app_dir)))


def _usage_error(exc: typer.TyperException) -> int:
    """Print a parsing error as one ``Error:`` line (or the help a bare group shows)."""
    context = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
        print(context.get_help())  # `llamaws`, `llamaws dynamodb`: the help, not an error
        return 0
    code = int(getattr(exc, "exit_code", 1))
    message = str(exc.format_message()).strip().rstrip(".")  # type: ignore[attr-defined]
    if code == 2:
        command = context.command_path if context is not None else "llamaws"
        message = f"{message}. See `{command} --help`."
    print(f"Error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    main()
