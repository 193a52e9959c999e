"""A ``stack_customizers`` function for deploying to moto server (tests only).

moto's CloudFormation silently skips some resource types (CloudFront, Lambda function
URLs and event-invoke configs, Secrets Manager secrets, bucket policies), and an
output that refers to a skipped resource fails the create. This removes those
resources and points such outputs at a placeholder host, so the rest of the stack
(table, buckets, function, role, queue, log group, schedule) is really created. The
product stack has no test-only branch: tests pass
``--setting stack_customizers=tests.moto_stack:for_moto``.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, CfnResource, Stack

__all__ = ["PLACEHOLDER_HOST", "SKIPPED_BY_MOTO", "for_moto"]

SKIPPED_BY_MOTO = (
    "AWS::CloudFront::",
    "AWS::Lambda::Url",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SecretsManager::Secret",
    "AWS::S3::BucketPolicy",
)
PLACEHOLDER_HOST = "moto.invalid"
_URL_OUTPUTS = {"ApiUrl": "/", "UiUrl": "/ui/", "FunctionUrl": None}


def for_moto(stack: Stack) -> None:
    """Drop what moto cannot create; outputs that named it get placeholders or go."""
    removed: list[str] = []
    for construct in list(stack.node.find_all()):
        if isinstance(construct, CfnResource) and construct.cfn_resource_type.startswith(
            SKIPPED_BY_MOTO
        ):
            removed.append(stack.get_logical_id(construct))
            scope = construct.node.scope
            assert scope is not None
            scope.node.try_remove_child(construct.node.id)
    base = str(getattr(getattr(stack, "settings", None), "base_path", ""))
    for child in list(stack.node.children):
        if not isinstance(child, CfnOutput):
            continue
        value = json.dumps(stack.resolve(child.value))
        if not any(logical_id in value for logical_id in removed):
            continue
        suffix = _URL_OUTPUTS.get(child.node.id)
        if child.node.id in _URL_OUTPUTS and suffix is not None:
            child.value = f"https://{PLACEHOLDER_HOST}{base}{suffix}"
        else:
            stack.node.try_remove_child(child.node.id)
