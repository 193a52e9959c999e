"""The access-log bucket: S3 server access logs and CloudFront standard logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .lint import ignore_on
from .nag import acknowledge
from .settings import Settings

__all__ = ["LOG_BUCKET_ID", "AccessLogs"]

LOG_BUCKET_ID = "AccessLogBucket"
"""Pinned logical id (a renamed bucket would be a new, empty one)."""


class AccessLogs(Construct):
    """A private bucket that receives access logs and forgets them after a while."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # CloudFront standard logging writes with ACLs.
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(settings.access_log_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN
            if settings.retain_on_delete
            else RemovalPolicy.DESTROY,
        )
        resource = self.bucket.node.default_child
        assert isinstance(resource, s3.CfnBucket)
        resource.override_logical_id(LOG_BUCKET_ID)
        ignore_on(
            resource,
            "W3045",
            "CloudFront standard logging writes into the bucket with the log-delivery ACL, "
            "so the bucket keeps ACLs (ObjectWriter, AccessControl LogDeliveryWrite).",
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket; logging its own accesses would log forever.",
        )
