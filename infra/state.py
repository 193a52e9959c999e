"""State: the deployment's DynamoDB table and the bucket for spilled payloads.

The table is built from :func:`llamaws.adapter.store.table.table_definition`
(the one place the key layout is written down) and :data:`TTL_ATTRIBUTE`.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from llamaws.adapter.store.table import TTL_ATTRIBUTE, table_definition

from .nag import acknowledge
from .settings import Settings

__all__ = ["SPILL_BUCKET_ID", "SPILL_PREFIX", "TABLE_ID", "State"]

TABLE_ID = "RunsTable"
SPILL_BUCKET_ID = "SpillBucket"
"""Pinned logical ids: a renamed table would be a new, empty table."""
SPILL_PREFIX = "llamaws-spill/"
"""Where the store writes spilled payloads (``adapter/store/client.py``)."""

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
          "B": dynamodb.AttributeType.BINARY}  # fmt: skip


class State(Construct):
    """The table (on-demand, PITR, TTL, deletion protection) and the spill bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        log_bucket: s3.IBucket | None,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if settings.retain_on_delete else RemovalPolicy.DESTROY
        definition = table_definition("unused")
        types = {d["AttributeName"]: d["AttributeType"] for d in definition["AttributeDefinitions"]}
        partition, sort = _keys(definition["KeySchema"], types)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=partition,
            sort_key=sort,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=settings.point_in_time_recovery
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=settings.deletion_protection,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal,
        )
        for index in definition["GlobalSecondaryIndexes"]:
            index_partition, index_sort = _keys(index["KeySchema"], types)
            self.table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=index_partition,
                sort_key=index_sort,
                projection_type=dynamodb.ProjectionType[index["Projection"]["ProjectionType"]],
            )
        table_resource = self.table.node.default_child
        assert isinstance(table_resource, dynamodb.CfnTable)
        table_resource.override_logical_id(TABLE_ID)
        if not settings.point_in_time_recovery:
            acknowledge(
                self.table,
                "AwsSolutions-DDB3",
                "point_in_time_recovery = false is set in [tool.llamaws].",
            )

        self.spill_bucket = s3.Bucket(
            self,
            "SpillBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=log_bucket,
            server_access_logs_prefix="s3/spill/" if log_bucket is not None else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-spilled-payloads",
                    prefix=SPILL_PREFIX,
                    expiration=Duration.days(settings.spill_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal,
        )
        bucket_resource = self.spill_bucket.node.default_child
        assert isinstance(bucket_resource, s3.CfnBucket)
        bucket_resource.override_logical_id(SPILL_BUCKET_ID)
        if log_bucket is None:
            acknowledge(
                self.spill_bucket,
                "AwsSolutions-S1",
                "access_logs = false is set in [tool.llamaws].",
            )


def _keys(
    schema: list[dict[str, Any]], types: dict[str, str]
) -> tuple[dynamodb.Attribute, dynamodb.Attribute | None]:
    by_type = {k["KeyType"]: k["AttributeName"] for k in schema}
    partition = dynamodb.Attribute(name=by_type["HASH"], type=_TYPES[types[by_type["HASH"]]])
    sort_name = by_type.get("RANGE")
    sort = dynamodb.Attribute(name=sort_name, type=_TYPES[types[sort_name]]) if sort_name else None
    return partition, sort
