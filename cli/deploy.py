"""``llamaws deploy``, ``llamaws bootstrap``, ``llamaws destroy``: thin, over
:mod:`llamaws.cli.deploy_phases` and ``infra``.

Phases are shown on stderr; the outcome (URLs, the first key, a first ``curl``) on
stdout, or as JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .operate import AppDir, EndpointUrl, Profile, Region, RichProgress, Stage, console, errors

if TYPE_CHECKING:
    from llamaws.cli.deploy_phases import DeployResult
    from llamaws.infra.destroy import DestroyPlan

__all__ = ["bootstrap", "deploy", "destroy", "register"]


def register(app: typer.Typer) -> None:
    """Add ``deploy``, ``bootstrap`` and ``destroy`` to the ``llamaws`` app."""
    app.command(
        epilog="Example:\n\n  $ llamaws deploy examples/hello\n\n"
        "  $ llamaws deploy examples/ui-app --stage dev --endpoint-url http://127.0.0.1:5000"
    )(deploy)
    app.command(epilog="Example:\n\n  $ llamaws bootstrap --region eu-west-1")(bootstrap)
    app.command(epilog="Example:\n\n  $ llamaws destroy examples/hello --yes")(destroy)


def deploy(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting", "-s", help="Override a [tool.llamaws] setting: KEY=VALUE (repeatable)."
        ),
    ] = None,
    install: Annotated[
        bool, typer.Option(help="Install the UI's packages first when they are missing or stale.")
    ] = True,
    create_key: Annotated[
        bool,
        typer.Option(
            "--create-key/--no-create-key",
            help='auth = "key": create a first API key when the deployment has none.',
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Build the UI and the bundle, deploy the stack, publish the UI; print the URLs."""
    from llamaws.cli.deploy_phases import DeployOptions
    from llamaws.cli.deploy_phases import deploy as run_deploy

    overrides: dict[str, object] = {"stage": stage}
    for item in setting or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            print(f"Error: --setting takes KEY=VALUE, not {item!r}", file=sys.stderr)
            raise typer.Exit(2)
        overrides[key.strip()] = value.strip()
    out = console()
    with errors(ctx):
        from .operate import target

        options = DeployOptions(
            app_dir=app_dir,
            target=target(endpoint_url, region, profile),
            overrides=overrides,
            install_ui=install,
            create_key=create_key,
        )
        result = run_deploy(options, RichProgress(out))
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(describe(result, app_dir))


def describe(result: DeployResult, app_dir: Path) -> str:
    """The outcome of a deploy, for people."""
    from llamaws.cli.deploy_phases import first_request

    number = f", deploy #{result.record.number}" if result.record and result.record.number else ""
    where = f"{result.where} (stack {result.stack_name}{number})"
    if not result.changed:
        lines = [f"No changes: {result.deployment} is deployed as it is here, in {where}."]
    else:
        verb = "Created" if result.created else "Updated"
        lines = [f"{verb} {result.deployment} in {where}."]
    lines.append(f"  API:   {result.api_url or '(no ApiUrl output)'}")
    if result.ui_url:
        lines.append(f"  UI:    {result.ui_url}")
    if result.auth == "key":
        if result.new_key:
            lines.append(
                f"  Key:   {result.new_key}  (shown only now: keep it in a secret store; "
                "`llamaws keys create` makes more)"
            )
        else:
            lines.append(
                f"  Key:   set LLAMAWS_API_KEY to one of your keys, or create one: "
                f"`llamaws keys create {app_dir}{result.flags}`"
            )
        if result.ui_url and result.api_url:
            lines.append(f"  Sign in (for the UI): {result.api_url.rstrip('/')}/auth")
    elif result.auth == "iam":
        lines.append("  Auth:  iam: sign requests with SigV4 for the function URL (docs/auth.md)")
    lines.append(f"  Try:   {first_request(result)}")
    return "\n".join(lines)


def bootstrap(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Prepare the account and region for deploys (`cdk bootstrap`; once per region)."""
    from llamaws.cli.deploy_phases import bootstrap as run_bootstrap

    from .operate import target

    with errors(ctx):
        where = run_bootstrap(
            app_dir, target(endpoint_url, region, profile), RichProgress(console())
        )
    print(f"Bootstrapped {where}: deploy with `llamaws deploy`.")


def destroy(
    ctx: typer.Context,
    app_dir: AppDir = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    stage: Stage = None,
) -> None:
    """Delete the deployment's stack; say what is kept (table, buckets) and how to remove it."""
    from llamaws.infra.destroy import destroy as run_destroy
    from llamaws.infra.destroy import plan_destroy

    from .operate import resolve, target

    out = console()
    with errors(ctx):
        aws = target(endpoint_url, region, profile)
        where = aws.where(aws.identity())
        _, settings = resolve(app_dir, stage)
        plan = plan_destroy(aws, settings.resolved_stack_name, settings.parameter_path)
        print(_plan_text(plan, where), file=sys.stderr)
        if not yes and not _confirmed(f"Delete stack {plan.stack_name}?"):
            print("Destroy cancelled: nothing was deleted.", file=sys.stderr)
            raise typer.Exit(1)
        run_destroy(aws, plan, RichProgress(out))
    print(_kept_text(plan))


def _confirmed(question: str) -> bool:
    """Ask on the terminal (or read the answer from stdin); no answer is a no."""
    import click

    try:
        return bool(typer.confirm(question, default=False, err=True))
    except click.exceptions.Abort:
        return False


def _plan_text(plan: DestroyPlan, where: str) -> str:
    lines = [f"Stack {plan.stack_name} in {where} ({plan.state.status}) will be deleted."]
    if plan.kept:
        lines.append("Kept (retain_on_delete): " + ", ".join(k.label for k in plan.kept) + ".")
    if plan.emptied:
        lines.append("Emptied, then deleted: bucket(s) " + ", ".join(plan.emptied) + ".")
    return "\n".join(lines)


def _kept_text(plan: DestroyPlan) -> str:
    lines = [f"Destroyed stack {plan.stack_name}."]
    if plan.kept or plan.parameters:
        lines.append("Kept, with the commands that remove them for good:")
        for kept in plan.kept:
            lines.append(f"  {kept.label}:\n    {kept.removal()}")
        if plan.parameters:
            lines.append(
                f"  {plan.parameters} env value(s) in SSM under {plan.parameter_path}:\n"
                f"    {plan.kept_parameters_removal()}"
            )
        lines.append("A new deploy with the same stack name starts with a new, empty table.")
    return "\n".join(lines)
