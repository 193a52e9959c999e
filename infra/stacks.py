"""The deployment's CloudFormation stack as it is: state, outputs, template, resources.

Also the two checks a deploy makes before building anything: the account and region
are bootstrapped for the CDK, and the stack is in a state CloudFormation can update
(else the error says how to recover).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .deploy_errors import NotBootstrapped, StackNotDeployable

if TYPE_CHECKING:
    from llamaws.adapter.config import Deployment

__all__ = [
    "BOOTSTRAP_STACK",
    "StackResource",
    "StackState",
    "check_bootstrapped",
    "check_deployable",
    "deployed_output",
    "deployed_template",
    "describe_stack",
    "recovery_hint",
    "stack_resources",
]

BOOTSTRAP_STACK = "CDKToolkit"
"""The CDK's bootstrap stack (default toolkit stack name and qualifier)."""

HEALTHY = frozenset(
    ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
     "IMPORT_ROLLBACK_COMPLETE")
)  # fmt: skip
"""States a deploy can update from (an update that was rolled back left the old version)."""


@dataclass(frozen=True)
class StackState:
    """What ``DescribeStacks`` says of a stack."""

    name: str
    status: str
    stack_id: str
    reason: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.status in HEALTHY

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


@dataclass(frozen=True)
class StackResource:
    """One resource of a deployed stack."""

    logical_id: str
    type: str
    physical_id: str
    status: str


def describe_stack(cloudformation: Any, name: str) -> StackState | None:
    """The stack called ``name``, or None when there is none (never created, or deleted)."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if "does not exist" in message:
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    stack = stacks[0]
    return StackState(
        name=name,
        status=str(stack["StackStatus"]),
        stack_id=str(stack["StackId"]),
        reason=stack.get("StackStatusReason") or None,
        outputs={
            str(output["OutputKey"]): str(output.get("OutputValue", ""))
            for output in stack.get("Outputs", [])
        },
        created=stack.get("CreationTime"),
        updated=stack.get("LastUpdatedTime"),
    )


def recovery_hint(state: StackState, flags: str = "") -> str:
    """What to do about a stack a deploy cannot update."""
    status = state.status
    if state.busy:
        return (
            "Another operation on the stack is running: wait for it to end "
            f"(`llamaws status{flags}`), then deploy again."
        )
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS"):
        return (
            "Its first create did not complete, and CloudFormation cannot update such a "
            f"stack: remove it with `llamaws destroy --yes{flags}`, then deploy again."
        )
    if status in ("UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED", "IMPORT_ROLLBACK_FAILED"):
        return (
            "Finish the rollback first: `aws cloudformation continue-update-rollback "
            f"--stack-name {state.name}` (with --resources-to-skip for resources that "
            "cannot roll back), then deploy again."
        )
    if status == "DELETE_FAILED":
        return (
            f"Run `llamaws destroy --yes{flags}` again (it names what blocked the delete), "
            "or remove what blocks it, then deploy again."
        )
    return "See the stack's events in the CloudFormation console."


def check_deployable(state: StackState | None, flags: str = "") -> None:
    """Raise :class:`StackNotDeployable` unless ``state`` is absent or can be updated."""
    if state is None or state.healthy:
        return
    reason = f" ({state.reason})" if state.reason else ""
    raise StackNotDeployable(
        f"stack {state.name} is {state.status}{reason}", hint=recovery_hint(state, flags)
    )


def check_bootstrapped(cloudformation: Any, where: str, flags: str = "") -> StackState:
    """The CDK bootstrap stack, which must exist and be usable."""
    hint = (
        f"Run `llamaws bootstrap{flags}` once for this account and region (it runs "
        "`cdk bootstrap`), then deploy again."
    )
    state = describe_stack(cloudformation, BOOTSTRAP_STACK)
    if state is None:
        raise NotBootstrapped(
            f"{where} is not bootstrapped for the AWS CDK (no {BOOTSTRAP_STACK} stack)",
            hint=hint,
        )
    if not state.healthy:
        raise NotBootstrapped(
            f"the CDK bootstrap stack {BOOTSTRAP_STACK} in {where} is {state.status}",
            hint=recovery_hint(state).replace("deploy again", "bootstrap again")
            if state.busy
            else hint,
        )
    return state


def deployed_template(cloudformation: Any, name: str) -> dict[str, Any] | None:
    """The template the stack runs (None when the stack is not there)."""
    from botocore.exceptions import ClientError

    try:
        body = cloudformation.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    except ClientError:
        return None
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    plain: dict[str, Any] = json.loads(json.dumps(body))  # botocore's OrderedDict, as dicts
    return plain


def stack_resources(cloudformation: Any, name: str) -> list[StackResource]:
    """Every resource of the stack, with its physical id."""
    found: list[StackResource] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
        for item in page.get("StackResourceSummaries", []):
            found.append(
                StackResource(
                    logical_id=str(item["LogicalResourceId"]),
                    type=str(item["ResourceType"]),
                    physical_id=str(item.get("PhysicalResourceId", "")),
                    status=str(item.get("ResourceStatus", "")),
                )
            )
    return found


def deployed_output(
    deployment: Deployment,
    key: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    stage: str | None = None,
) -> str | None:
    """An output of the deployment's stack, or None when it cannot be read (best effort:
    no stack, no access, no network)."""
    from llamaws.infra.settings import resolve_settings

    from .target import AwsTarget

    try:
        settings = resolve_settings(deployment, {"stage": stage})
        target = AwsTarget.resolve(endpoint_url, region)
        state = describe_stack(target.client("cloudformation"), settings.resolved_stack_name)
    except Exception:
        return None
    return state.outputs.get(key) if state is not None else None
