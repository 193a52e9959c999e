"""``llamaws destroy``: delete the deployment's stack, and say what stays and how to remove it.

The stack is deleted with CloudFormation directly (no synth: the app's code may not
even build any more); CloudFormation uses the role the stack was deployed with. What
the template marks ``Retain`` (the table and the buckets while ``retain_on_delete`` is
on, the default) outlives the stack, as do the env values in SSM. Buckets the
template lets go are emptied first (CloudFormation refuses to delete a full bucket).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from llamaws.adapter.errors import LlamawsError

from .deploy_errors import StackMissing
from .deploy_record import delete_record
from .progress import Progress
from .stacks import StackState, deployed_template, describe_stack, stack_resources
from .target import AwsTarget

__all__ = ["DestroyPlan", "Kept", "destroy", "plan_destroy"]

RETAINED = frozenset(("Retain", "RetainExceptOnCreate"))
POLL_SECONDS_AWS = 5.0
POLL_SECONDS_LOCAL = 0.3
DESTROY_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class Kept:
    """A resource that outlives the stack."""

    type: str
    physical_id: str

    @property
    def label(self) -> str:
        kinds = {
            "AWS::DynamoDB::Table": "table",
            "AWS::S3::Bucket": "bucket",
            "AWS::SecretsManager::Secret": "secret",
            "AWS::Logs::LogGroup": "log group",
        }
        return f"{kinds.get(self.type, self.type)} {self.physical_id}"

    def removal(self) -> str:
        """The command that removes it for good."""
        name = self.physical_id
        if self.type == "AWS::DynamoDB::Table":
            return (
                f"aws dynamodb update-table --table-name {name} --no-deletion-protection-enabled"
                f" && aws dynamodb delete-table --table-name {name}"
            )
        if self.type == "AWS::S3::Bucket":
            return f"aws s3 rb s3://{name} --force"
        if self.type == "AWS::SecretsManager::Secret":
            return f"aws secretsmanager delete-secret --secret-id {name}"
        if self.type == "AWS::Logs::LogGroup":
            return f"aws logs delete-log-group --log-group-name {name}"
        return f"(delete {name} in the console)"


@dataclass(frozen=True)
class DestroyPlan:
    """What a destroy will delete, keep and empty."""

    state: StackState
    kept: tuple[Kept, ...]
    emptied: tuple[str, ...]
    """Buckets deleted with the stack: emptied first."""
    parameter_path: str
    parameters: int
    """Env values kept in SSM under ``parameter_path``."""

    @property
    def stack_name(self) -> str:
        return self.state.name

    def kept_parameters_removal(self) -> str:
        return (
            f"aws ssm get-parameters-by-path --path {self.parameter_path} --query "
            "'Parameters[].Name' --output text | xargs -n 10 aws ssm delete-parameters --names"
        )


def plan_destroy(target: AwsTarget, stack_name: str, parameter_path: str) -> DestroyPlan:
    """Read the stack and its template: what stays, what goes. :class:`StackMissing` when
    there is no stack."""
    cloudformation = target.client("cloudformation")
    state = describe_stack(cloudformation, stack_name)
    if state is None:
        raise StackMissing(
            f"stack {stack_name} does not exist in {target.where()}",
            hint="Nothing to destroy (check --stage, --region and --endpoint-url).",
        )
    template = deployed_template(cloudformation, stack_name) or {}
    policies = {
        logical_id: str(resource.get("DeletionPolicy", "Delete"))
        for logical_id, resource in template.get("Resources", {}).items()
    }
    kept: list[Kept] = []
    emptied: list[str] = []
    for resource in stack_resources(cloudformation, stack_name):
        if not resource.physical_id or resource.status == "DELETE_COMPLETE":
            continue
        if policies.get(resource.logical_id) in RETAINED:
            kept.append(Kept(resource.type, resource.physical_id))
        elif resource.type == "AWS::S3::Bucket":
            emptied.append(resource.physical_id)
    parameters = _count_parameters(target, parameter_path)
    return DestroyPlan(state, tuple(kept), tuple(emptied), parameter_path, parameters)


def destroy(target: AwsTarget, plan: DestroyPlan, progress: Progress) -> None:
    """Empty what must be, delete the stack, wait for the end, forget the deploy record."""
    from botocore.exceptions import BotoCoreError, ClientError

    cloudformation = target.client("cloudformation")
    if plan.emptied:
        with progress.phase("empty") as phase:
            s3 = target.client("s3")
            removed = sum(_empty_bucket(s3, bucket, phase.update) for bucket in plan.emptied)
            phase.done(f"{removed} object(s) removed from {len(plan.emptied)} bucket(s)")
    with progress.phase("destroy") as phase:
        started = time.monotonic()
        try:
            cloudformation.delete_stack(StackName=plan.state.stack_id or plan.stack_name)
        except (BotoCoreError, ClientError) as exc:
            raise LlamawsError(
                f"CloudFormation refused to delete {plan.stack_name}: {exc}"
            ) from None
        poll = POLL_SECONDS_LOCAL if target.local else POLL_SECONDS_AWS
        deadline = started + DESTROY_TIMEOUT_SECONDS
        while True:
            state = describe_stack(cloudformation, plan.state.stack_id or plan.stack_name)
            if state is None or state.status == "DELETE_COMPLETE":
                break
            if state.status == "DELETE_FAILED":
                raise LlamawsError(
                    f"deleting stack {plan.stack_name} failed: {state.reason or 'see its events'}",
                    hint="Remove what blocks it (named above), then run `llamaws destroy` again.",
                )
            phase.update(_latest_event(cloudformation, plan.state.stack_id) or state.status)
            if time.monotonic() > deadline:
                raise LlamawsError(
                    f"stack {plan.stack_name} is still {state.status} after an hour",
                    hint="Follow it in the CloudFormation console.",
                )
            time.sleep(poll)
        phase.done(f"{plan.stack_name} deleted in {time.monotonic() - started:.0f} s")
    delete_record(target, plan.stack_name)


def _latest_event(cloudformation: Any, stack_id: str) -> str | None:
    try:
        events = cloudformation.describe_stack_events(StackName=stack_id).get("StackEvents", [])
    except Exception:  # progress only: never fail the destroy over it
        return None
    if not events:
        return None
    event = events[0]
    return f"{event.get('LogicalResourceId')} {event.get('ResourceStatus')}"


def _empty_bucket(s3: Any, bucket: str, update: Any) -> int:
    """Delete every object (and version) of ``bucket``; how many went."""
    from botocore.exceptions import ClientError

    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(objects), 1000):
                chunk = objects[start : start + 1000]
                s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                removed += len(chunk)
                update(f"{bucket}: {removed} object(s) removed")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return removed
        raise LlamawsError(f"cannot empty bucket {bucket}: {exc}") from None
    return removed


def _count_parameters(target: AwsTarget, path: str) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = target.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=path)
        return sum(len(page.get("Parameters", [])) for page in pages)
    except (BotoCoreError, ClientError):
        return 0
