"""``llamaws deploy``: from an app folder to a working URL, in phases.

The one sequence that uses both ``builder`` (UI build, bundle, publish) and ``infra``
(synth, the stack, secrets): the CLI calls the others, ``infra`` never imports
``builder`` (``docs/architecture.md``).

1. **checks** (before anything is built): Node.js, AWS credentials, the account and
   region bootstrapped for the CDK, the stack in a state CloudFormation can update,
   the CDK libraries, the CDK CLI (installed on first use, :mod:`llamaws.infra.cdk_cli`);
2. **UI build** (an app with a UI): the build and its manifest;
3. **bundle**: the Lambda bundle, reused when nothing it is made of changed;
4. **synth**: the cloud assembly, in this process;
5. **secrets**: the env files' values to SSM (before the stack, so the new code's
   first cold start reads them) or to the Secrets Manager secret (after: the stack
   creates it);
6. **stack**: ``cdk deploy`` of the assembly, skipped when the deployed template is
   the one just synthesized;
7. **UI publish** (incremental, one CloudFront invalidation);
8. **API key** (``auth = "key"``): the first deploy creates one and shows it once.

A run that changes nothing says so; a run that changed something records itself
(:mod:`llamaws.infra.deploy_record`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamaws.adapter.errors import LlamawsError
from llamaws.infra.cdk_cli import CdkCli, CdkRun, find_node, locate_cdk_cli, node_version
from llamaws.infra.deploy_errors import (
    CdkFailed,
    CredentialsMissing,
    NotBootstrapped,
    StackNotDeployable,
)
from llamaws.infra.deploy_record import (
    DeployRecord,
    app_commit,
    code_sha256,
    read_record,
    write_record,
)
from llamaws.infra.progress import Phase, Progress
from llamaws.infra.secret_values import PushResult, env_file_values, push_values, secret_store
from llamaws.infra.stacks import (
    StackState,
    check_bootstrapped,
    check_deployable,
    deployed_template,
    describe_stack,
    recovery_hint,
)
from llamaws.infra.target import AwsTarget, Identity

if TYPE_CHECKING:
    from llamaws.adapter.config import Deployment
    from llamaws.builder.publish import PublishResult
    from llamaws.infra.settings import Settings

    from .stack_inputs import PreparedStack

__all__ = ["DeployOptions", "DeployResult", "bootstrap", "deploy", "first_request"]

KEY_NAME = "llamaws deploy"
"""The label of the key a first deploy creates."""


@dataclass(frozen=True)
class DeployOptions:
    """What ``llamaws deploy`` was asked."""

    app_dir: Path
    target: AwsTarget
    overrides: Mapping[str, object] = field(default_factory=dict)
    """``[tool.llamaws]`` settings given as flags (``--stage``, ``--setting``)."""
    install_ui: bool = True
    create_key: bool = True


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did, and where the deployment answers."""

    deployment: str
    stack_name: str
    where: str
    auth: str
    region: str
    outputs: dict[str, str]
    created: bool
    stack_changed: bool
    ui: PublishResult | None
    secrets: PushResult
    new_key: str | None
    record: DeployRecord | None
    flags: str = ""

    @property
    def changed(self) -> bool:
        ui_changed = self.ui is not None and bool(self.ui.plan.uploads or self.ui.plan.deletes)
        return (
            self.stack_changed
            or ui_changed
            or self.secrets.changed_anything
            or self.new_key is not None
        )

    @property
    def api_url(self) -> str | None:
        return self.outputs.get("ApiUrl")

    @property
    def ui_url(self) -> str | None:
        return self.outputs.get("UiUrl")

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "stack": self.stack_name,
            "where": self.where,
            "auth": self.auth,
            "created": self.created,
            "changed": self.changed,
            "stack_changed": self.stack_changed,
            "ui": self.ui.to_json() if self.ui is not None else None,
            "secrets": {
                "added": list(self.secrets.added),
                "changed": list(self.secrets.changed),
                "removed": list(self.secrets.removed),
                "unchanged": list(self.secrets.unchanged),
            },
            "api_key": self.new_key,
            "outputs": self.outputs,
            "record": self.record.to_json() if self.record is not None else None,
            "first_request": first_request(self),
        }


def first_request(result: DeployResult) -> str:
    """A ``curl`` that lists the deployment's workflows, with the credential it needs."""
    api = (result.api_url or "").rstrip("/")
    if result.auth == "iam":
        function_url = (result.outputs.get("FunctionUrl") or "").rstrip("/")
        return (
            f'curl --aws-sigv4 "aws:amz:{result.region}:lambda" '
            '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
            '-H "x-amz-security-token: $AWS_SESSION_TOKEN" '
            f"{function_url}/deployments/{result.deployment}/workflows"
        )
    if result.auth == "key":
        key = result.new_key or "$LLAMAWS_API_KEY"
        return f'curl -H "Authorization: Bearer {key}" {api}/workflows'
    return f"curl {api}/workflows"


# -- the phases ----------------------------------------------------------------------------


@dataclass
class _Checked:
    identity: Identity
    where: str
    state: StackState | None
    cli: CdkCli


def deploy(options: DeployOptions, progress: Progress) -> DeployResult:
    """Deploy the app of ``options``; see the module docstring for the phases."""
    from llamaws.adapter.config import resolve_deployment
    from llamaws.infra.settings import resolve_settings

    target = options.target
    env = dict(os.environ)
    deployment = resolve_deployment(options.app_dir)
    settings = resolve_settings(deployment, options.overrides)
    stack_name = settings.resolved_stack_name
    values = env_file_values(deployment)  # a missing env file fails before any work
    if settings.auth == "none":
        progress.warn(
            'auth = "none": the deployed API answers anyone who has its URL. Use "key" '
            '(the default) or "iam" unless the data is public (docs/auth.md).'
        )
    checked = _checks(options, deployment, stack_name, progress, env)

    ui_dir = _build_ui(deployment, options, progress, env)
    prepared = _bundle(options, progress)
    outdir = deployment.config_dir / ".llamaws" / "deploy" / "cdk.out"
    template = _synth(prepared, options.target, outdir, progress)

    cloudformation = target.client("cloudformation")
    secrets: PushResult | None = None
    if settings.secrets == "ssm":
        secrets = _push_secrets(target, settings, None, values, progress)

    created = checked.state is None
    with progress.phase("stack") as phase:
        started = time.monotonic()
        deployed = deployed_template(cloudformation, stack_name) if not created else None
        state = checked.state
        if state is not None and state.healthy and deployed == template:
            stack_changed = False
            phase.done(f"{stack_name} unchanged")
        else:
            stack_changed = True
            run = checked.cli.run(
                [
                    *("deploy", stack_name, "--app", str(outdir)),
                    *("--require-approval", "never", "--progress", "events", "--no-notices"),
                    *("--method", "direct" if target.local else "change-set"),
                ],
                env=target.cli_environment(env),
                cwd=outdir.parent,
                on_line=phase.update,
            )
            if run.code != 0:
                raise _cdk_failure("deploy", run, stack_name, checked.where, target.flags())
            state = describe_stack(cloudformation, stack_name)
            if state is None or not state.healthy:
                status = state.status if state is not None else "missing"
                raise StackNotDeployable(
                    f"cdk deploy ended but stack {stack_name} is {status}",
                    hint=recovery_hint(state, target.flags()) if state is not None else None,
                )
            verb = "created" if created else "updated"
            phase.done(f"{stack_name} {verb} in {time.monotonic() - started:.0f} s")
    outputs = dict(state.outputs)

    if settings.secrets == "secretsmanager":
        secrets = _push_secrets(target, settings, outputs, values, progress)
    assert secrets is not None

    ui_result = None
    if ui_dir is not None:
        ui_result = _publish_ui(deployment, ui_dir, outputs, target, progress)

    new_key = None
    if settings.auth == "key" and options.create_key:
        new_key = _first_key(outputs, target, progress)

    result = DeployResult(
        deployment=deployment.name,
        stack_name=stack_name,
        where=checked.where,
        auth=settings.auth,
        region=target.region,
        outputs=outputs,
        created=created,
        stack_changed=stack_changed,
        ui=ui_result,
        secrets=secrets,
        new_key=new_key,
        record=None,
        flags=target.flags(),
    )
    record = read_record(target, stack_name)
    if result.changed or record is None:
        record = write_record(
            target,
            stack_name,
            deployed_by=checked.identity.arn,
            code=code_sha256(prepared.bundle.zip_path),
            ui_build=ui_result.plan.build_id if ui_result is not None else None,
            commit=app_commit(deployment.config_dir),
        )
    return replace(result, record=record)


def _checks(
    options: DeployOptions,
    deployment: Deployment,
    stack_name: str,
    progress: Progress,
    env: dict[str, str],
) -> _Checked:
    from .stack_inputs import require_cdk

    target = options.target
    with progress.phase("checks") as phase:
        node = find_node(env)
        phase.update("AWS credentials")
        identity = target.identity()
        where = target.where(identity)
        phase.update(f"CDK bootstrap of {where}")
        cloudformation = target.client("cloudformation")
        check_bootstrapped(cloudformation, where, target.flags())
        state = describe_stack(cloudformation, stack_name)
        check_deployable(state, target.flags())
        require_cdk()
        cli = locate_cdk_cli(deployment.config_dir, environ=env, on_install=phase.update)
        phase.done(
            f"{identity.arn} in {where}; Node.js {node_version(node)}, CDK CLI {cli.version}"
        )
    return _Checked(identity, where, state, cli)


def _build_ui(
    deployment: Deployment, options: DeployOptions, progress: Progress, env: dict[str, str]
) -> Path | None:
    if deployment.config.ui is None:
        return None
    from llamaws.adapter.config import resolve_environment
    from llamaws.builder.manifest import manifest_path, scan_build, write_manifest
    from llamaws.builder.ui_build import build_ui

    with progress.phase("UI build") as phase:
        environ = {**env, **resolve_environment(deployment, env)}
        output = build_ui(deployment, environ, install=options.install_ui, on_output=phase.update)
        manifest = scan_build(output)
        write_manifest(manifest, manifest_path(deployment))
        size = _size(manifest.total_size)
        phase.done(f"{len(manifest.files)} files, {size} (build {manifest.build_id})")
    return output


def _bundle(options: DeployOptions, progress: Progress) -> PreparedStack:
    from .stack_inputs import display_path, prepare_stack

    with progress.phase("bundle") as phase:
        prepared = prepare_stack(options.app_dir, options.overrides, echo=phase.update)
        bundle = prepared.bundle
        state = "unchanged" if bundle.reused else "built"
        phase.done(
            f"{display_path(bundle.zip_path)}, {_size(bundle.zipped_bytes)} zipped ({state})"
        )
    for note in bundle.notes:
        progress.note(f"note: {note}")
    return prepared


def _synth(
    prepared: PreparedStack, target: AwsTarget, outdir: Path, progress: Progress
) -> dict[str, Any]:
    from llamaws.infra.app import build_app, synthesize

    with progress.phase("synth") as phase:
        started = time.monotonic()
        if outdir.exists():
            shutil.rmtree(outdir)
        synthesizer = None
        if target.local:
            from aws_cdk import DefaultStackSynthesizer

            # Local engines do not evaluate CloudFormation rules (the bootstrap check).
            synthesizer = DefaultStackSynthesizer(generate_bootstrap_version_rule=False)
        app, stack = build_app(prepared.inputs, outdir=outdir, synthesizer=synthesizer)
        synthesis = synthesize(app, stack)
        template: dict[str, Any] = json.loads(synthesis.template.read_text(encoding="utf-8"))
        phase.done(
            f"{len(template.get('Resources', {}))} resources in {time.monotonic() - started:.0f} s"
        )
    return template


def _push_secrets(
    target: AwsTarget,
    settings: Settings,
    outputs: Mapping[str, str] | None,
    values: Mapping[str, str],
    progress: Progress,
) -> PushResult:
    with progress.phase("secrets") as phase:
        store = secret_store(settings.secrets, settings.parameter_path, outputs)
        result = push_values(target, store, values)
        phase.done(result.summary())
    return result


def _publish_ui(
    deployment: Deployment,
    build_dir: Path,
    outputs: Mapping[str, str],
    target: AwsTarget,
    progress: Progress,
) -> PublishResult:
    from llamaws.builder.publish import PublishTarget, publish

    with progress.phase("UI publish") as phase:
        bucket = outputs.get("UiBucketName")
        if not bucket:
            raise LlamawsError(
                "the stack has no UiBucketName output, so the UI cannot be published",
                hint="Deploy again; if a stack customizer removes the UI bucket, keep it.",
            )
        publish_target = PublishTarget.for_deployment(
            deployment,
            bucket,
            prefix=outputs.get("UiPrefix"),
            distribution_id=outputs.get("DistributionId") or None,
        )
        result = publish(
            build_dir,
            publish_target,
            s3=target.client("s3"),
            cloudfront=target.client("cloudfront"),
            progress=_PublishPhase(phase),
        )
        plan = result.plan
        if not plan.uploads and not plan.deletes:
            phase.done(f"{publish_target.url} unchanged ({len(plan.unchanged)} files)")
        else:
            invalidated = (
                f", invalidation {result.invalidation_id}" if result.invalidation_id else ""
            )
            phase.done(
                f"{publish_target.url}: {len(plan.uploads)} uploaded "
                f"({_size(plan.bytes_to_upload)}), {len(plan.unchanged)} unchanged, "
                f"{len(plan.deletes)} deleted{invalidated}"
            )
    return result


class _PublishPhase:
    """:class:`builder.publish.PublishProgress` as a phase's detail line."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.files = 0
        self.total = 0

    def start(self, files: int, total_bytes: int) -> None:
        self.total = files

    def uploaded(self, path: str, size: int) -> None:
        self.files += 1
        self.phase.update(f"uploaded {self.files}/{self.total}: {path}")

    def step(self, text: str) -> None:
        self.phase.update(text)


def _first_key(outputs: Mapping[str, str], target: AwsTarget, progress: Progress) -> str | None:
    """A key for the first request, when the deployment has never had one."""
    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient

    with progress.phase("API key") as phase:
        table = outputs.get("TableName")
        if not table:
            raise LlamawsError("the stack has no TableName output: cannot manage API keys")
        client = TableClient(
            table, endpoint_url=target.endpoint_url, region_name=target.region, max_attempts=3
        )
        store = KeyStore(client)
        keys = asyncio.run(store.list())
        if keys:
            active = sum(1 for key in keys if key.active)
            phase.done(f"{active} active key(s) in {table}; none created")
            return None
        new = asyncio.run(store.create(KEY_NAME))
        phase.done(f"created key {new.info.key_id} (shown once, below)")
        return new.key


# -- bootstrap -------------------------------------------------------------------------------


def bootstrap(app_dir: Path, target: AwsTarget, progress: Progress) -> str:
    """``cdk bootstrap`` of the target's account and region; returns where."""
    env = dict(os.environ)
    with progress.phase("checks") as phase:
        node = find_node(env)
        identity = target.identity()
        where = target.where(identity)
        cli = locate_cdk_cli(app_dir, environ=env, on_install=phase.update)
        phase.done(
            f"{identity.arn} in {where}; Node.js {node_version(node)}, CDK CLI {cli.version}"
        )
    with progress.phase("bootstrap") as phase:
        started = time.monotonic()
        work = app_dir.resolve() / ".llamaws" / "deploy"
        work.mkdir(parents=True, exist_ok=True)
        run = cli.run(
            ["bootstrap", f"aws://{identity.account}/{target.region}", "--no-notices"],
            env=target.cli_environment(env),
            cwd=work,
            on_line=phase.update,
        )
        if run.code != 0:
            raise _cdk_failure("bootstrap", run, "CDKToolkit", where, target.flags())
        phase.done(f"{where} bootstrapped in {time.monotonic() - started:.0f} s")
    return where


# -- helpers ---------------------------------------------------------------------------------

_STATE_IN_OUTPUT = re.compile(r"is in (\w+) state and can not be updated")
_ERROR_LINE = re.compile(r"(❌|error|failed|exception)", re.IGNORECASE)


def _cdk_failure(verb: str, run: CdkRun, stack_name: str, where: str, flags: str) -> Exception:
    """The one-line error for a failed CLI run (the known causes first)."""
    text = "\n".join(run.tail)
    lowered = text.lower()
    if "bootstrap" in lowered and ("not been bootstrapped" in lowered or "/cdk-bootstrap/" in text):
        return NotBootstrapped(
            f"{where} is not bootstrapped for the AWS CDK (or its bootstrap is too old)",
            hint=f"Run `llamaws bootstrap{flags}`, then deploy again.",
        )
    stuck = _STATE_IN_OUTPUT.search(text)
    if stuck:
        state = StackState(name=stack_name, status=stuck[1], stack_id="")
        return StackNotDeployable(
            f"stack {stack_name} is {stuck[1]}", hint=recovery_hint(state, flags)
        )
    if "unable to resolve aws account" in lowered or (
        "credentials" in lowered and ("unable to" in lowered or "could not" in lowered)
    ):
        return CredentialsMissing(
            "the CDK CLI found no usable AWS credentials",
            hint="Configure them (aws configure, AWS_PROFILE) and try again.",
        )
    errors = [line for line in run.tail if _ERROR_LINE.search(line)]
    last = (errors or list(run.tail) or ["no output"])[-1].strip(" ❌")
    return CdkFailed(
        f"cdk {verb} failed (exit {run.code}): {last}",
        hint="Its last lines are above.",
        tail=run.tail,
    )


def _size(count: int) -> str:
    from rich.filesize import decimal

    return str(decimal(count))
