"""``llamaws ui publish`` against the local S3 engine (moto server over HTTP).

The builds are the real ui-app example built twice with Vite (offline, from
.ci/install-ui-deps.sh's node_modules): v2 differs from v1 by one line of CSS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from llamaws.adapter.config import resolve_deployment
from llamaws.builder import static_rules
from llamaws.builder.manifest import Manifest, scan_build
from llamaws.builder.publish import (
    PublishBusy,
    PublishConflict,
    PublishError,
    PublishResult,
    PublishTarget,
    aws_clients,
    execute,
    plan,
    publish,
    read_live_state,
)
from llamaws.builder.publish_lock import PublishLock
from llamaws.builder.ui_build import build_ui
from llamaws.cli.main import app as cli

from .engines import MotoServer
from .tcp_relay import TcpRelay
from .ui_support import ui_app_copy

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_s3 import S3Client

UI = "/deployments/ui-app/ui"


@dataclass(frozen=True)
class Builds:
    app: Path
    v1: Path
    v2: Path

    def manifest(self, which: Path) -> Manifest:
        return scan_build(which)


def _ignore(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """The ui-app example built, then built again after one CSS change."""
    root = tmp_path_factory.mktemp("ui-publish")
    app = ui_app_copy(root)
    deployment = resolve_deployment(app)
    environ = dict(os.environ)
    shutil.copytree(build_ui(deployment, environ, install=False, on_output=_ignore), root / "v1")
    with (app / "ui" / "src" / "style.css").open("a") as css:
        css.write("\nh1 { letter-spacing: 0.02em; }\n")
    shutil.copytree(build_ui(deployment, environ, install=False, on_output=_ignore), root / "v2")
    return Builds(app, root / "v1", root / "v2")


@dataclass
class Bucket:
    name: str
    target: PublishTarget
    s3: S3Client
    cloudfront: CloudFrontClient
    endpoint: str

    def get(self, path: str) -> bytes:
        return self.s3.get_object(Bucket=self.name, Key=self.target.key(path))["Body"].read()

    def exists(self, path: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.name, Key=self.target.key(path))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return False
            raise
        return True

    def publish(self, build_dir: Path, **options: object) -> PublishResult:
        return publish(build_dir, self.target, s3=self.s3, cloudfront=self.cloudfront,
                       **options)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def bucket(moto_server: MotoServer, builds: Builds) -> Iterator[Bucket]:
    name = f"ui-{uuid.uuid4().hex[:12]}"
    s3, cloudfront = aws_clients(moto_server.endpoint)
    s3.create_bucket(Bucket=name)
    target = PublishTarget.for_deployment(resolve_deployment(builds.app), name)
    yield Bucket(name, target, s3, cloudfront, moto_server.endpoint)


def _serves(bucket: Bucket, build_dir: Path) -> None:
    """Every file of ``build_dir`` is in the bucket with its content, and is live."""
    manifest = scan_build(build_dir)
    for path, entry in manifest.files.items():
        assert hashlib.sha256(bucket.get(path)).hexdigest() == entry.sha256, path
    assert read_live_state(bucket.s3, bucket.target).state.files == manifest.files


def test_first_publish_uploads_every_file_with_its_headers(bucket: Bucket, builds: Builds) -> None:
    result = bucket.publish(builds.v1)
    manifest = scan_build(builds.v1)
    assert result.to_json()["uploaded"] == len(manifest.files) == 4
    assert result.to_json()["bytes_uploaded"] == manifest.total_size
    assert bucket.target.prefix == "deployments/ui-app/ui"
    for path, entry in manifest.files.items():
        head = bucket.s3.head_object(Bucket=bucket.name, Key=f"deployments/ui-app/ui/{path}")
        assert head["ContentType"] == entry.content_type == static_rules.content_type(path)
        assert head["CacheControl"] == entry.cache_control == static_rules.cache_control(path)
        assert head["ContentLength"] == entry.size
        assert head["Metadata"]["sha256"] == entry.sha256
    html = bucket.s3.head_object(Bucket=bucket.name, Key="deployments/ui-app/ui/index.html")
    assert (html["ContentType"], html["CacheControl"]) == ("text/html; charset=utf-8", "no-cache")
    assets = [p for p in manifest.files if p.startswith("assets/")]
    assert assets and all(manifest.files[p].cache_control == static_rules.CACHE_IMMUTABLE
                          for p in assets)  # fmt: skip
    _serves(bucket, builds.v1)


def test_one_source_change_uploads_only_the_changed_assets_and_the_html(
    bucket: Bucket, builds: Builds
) -> None:
    bucket.publish(builds.v1)
    old, new = scan_build(builds.v1).files, scan_build(builds.v2).files
    result = bucket.publish(builds.v2)
    changed_assets = sorted(p for p in new if p not in old)
    assert changed_assets and all(p.startswith("assets/") for p in changed_assets)
    uploaded = result.to_json()["files"]["uploaded"]
    assert uploaded == [*changed_assets, "index.html"]  # the page last
    assert result.to_json()["unchanged"] == 1  # robots.txt
    assert result.to_json()["bytes_uploaded"] == sum(new[p].size for p in uploaded)
    # The old assets stay for the pages still open on v1.
    assert sorted(result.plan.retire) == sorted(p for p in old if p not in new)
    assert all(bucket.exists(p) for p in result.plan.retire)
    _serves(bucket, builds.v2)
    again = bucket.publish(builds.v2)
    assert again.to_json()["uploaded"] == 0 and again.to_json()["deleted"] == 0


def test_retired_files_are_deleted_after_the_grace_period(bucket: Bucket, builds: Builds) -> None:
    t0 = datetime.now(UTC)
    bucket.publish(builds.v1, now=t0)
    retired = bucket.publish(builds.v2, now=t0).plan.retire
    assert retired
    within = bucket.publish(builds.v2, now=t0 + timedelta(minutes=59))
    assert within.to_json()["deleted"] == 0 and all(bucket.exists(p) for p in retired)
    after = bucket.publish(builds.v2, now=t0 + timedelta(minutes=61))
    assert sorted(after.to_json()["files"]["deleted"]) == sorted(retired)
    assert not any(bucket.exists(p) for p in retired)
    assert read_live_state(bucket.s3, bucket.target).state.retired == {}
    _serves(bucket, builds.v2)


def test_one_invalidation_of_the_changed_unhashed_paths(bucket: Bucket, builds: Builds) -> None:
    distribution = bucket.cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": bucket.name,
            "Comment": "",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "ui",
                        "DomainName": f"{bucket.name}.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "ui",
                "ViewerProtocolPolicy": "https-only",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            },
        }
    )["Distribution"]["Id"]
    target = PublishTarget(bucket.name, bucket.target.prefix, UI, distribution)
    first = publish(builds.v1, target, s3=bucket.s3, cloudfront=bucket.cloudfront)
    assert first.invalidation_id is None  # nothing was replaced
    second = publish(builds.v2, target, s3=bucket.s3, cloudfront=bucket.cloudfront)
    assert second.to_json()["invalidated"] == [f"{UI}/index.html"]
    items = bucket.cloudfront.list_invalidations(DistributionId=distribution)
    assert [i["Id"] for i in items["InvalidationList"]["Items"]] == [second.invalidation_id]
    assert second.invalidation_id is not None
    sent = bucket.cloudfront.get_invalidation(DistributionId=distribution,
                                              Id=second.invalidation_id)  # fmt: skip
    assert sent["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == [f"{UI}/index.html"]


def test_an_unhashed_object_changed_behind_the_manifest_is_uploaded_again(
    bucket: Bucket, builds: Builds
) -> None:
    bucket.publish(builds.v1)
    key = bucket.target.key("index.html")
    bucket.s3.put_object(Bucket=bucket.name, Key=key, Body=b"<p>edited</p>")
    result = bucket.publish(builds.v1)
    assert result.to_json()["files"]["uploaded"] == ["index.html"]
    _serves(bucket, builds.v1)


def test_dry_run_plans_without_changing_anything(bucket: Bucket, builds: Builds) -> None:
    bucket.publish(builds.v1)
    dry = bucket.publish(builds.v2, dry_run=True)
    assert dry.dry_run and dry.to_json()["files"]["uploaded"][-1] == "index.html"
    assert len(dry.plan.uploads) == 3
    _serves(bucket, builds.v1)


def test_interrupted_publish_keeps_the_previous_version_and_a_rerun_completes(
    bucket: Bucket, builds: Builds, moto_server: MotoServer
) -> None:
    bucket.publish(builds.v1)
    relay = TcpRelay(int(moto_server.endpoint.rsplit(":", 1)[1]))
    s3, _ = aws_clients(relay.endpoint, workers=1)

    class CutAfterFirstUpload:
        def start(self, files: int, total_bytes: int) -> None: ...
        def step(self, text: str) -> None: ...
        def uploaded(self, path: str, size: int) -> None:
            relay.cut()  # the engine "stops" with one new asset in the bucket

    with pytest.raises(PublishError, match="running the publish again completes it"):
        publish(builds.v2, bucket.target, s3=s3, progress=CutAfterFirstUpload(), workers=1,
                lock_ttl=1.0)  # fmt: skip
    # The previous version still serves: its page, its assets, its manifest.
    _serves(bucket, builds.v1)
    # The lock was never released (the engine was unreachable): the rerun takes it
    # over once its lease ends and learns what the interrupted publish uploaded.
    rerun = bucket.publish(builds.v2, lock_wait=30)
    new_assets = [p for p in scan_build(builds.v2).files if p not in scan_build(builds.v1).files]
    assert len(new_assets) == 2
    uploaded = rerun.to_json()["files"]["uploaded"]
    assert uploaded[-1] == "index.html" and len(uploaded) == 2  # one asset was already there
    _serves(bucket, builds.v2)


def test_a_publish_waits_for_the_lock_and_gives_up_when_told_not_to(
    bucket: Bucket, builds: Builds
) -> None:
    holder = PublishLock(bucket.s3, bucket.name, bucket.target.lock_key, ttl=30, wait=0)
    holder.acquire()
    with pytest.raises(PublishBusy, match="another publish of this UI is running"):
        bucket.publish(builds.v1, lock_wait=0)
    results: list[PublishResult] = []
    waiter = threading.Thread(target=lambda: results.append(bucket.publish(builds.v1)))
    waiter.start()
    waiter.join(timeout=1.5)
    assert waiter.is_alive() and read_live_state(bucket.s3, bucket.target).etag is None
    holder.release()
    waiter.join(timeout=30)
    assert results and results[0].to_json()["uploaded"] == 4
    _serves(bucket, builds.v1)


def test_concurrent_publishes_leave_one_consistent_version(bucket: Bucket, builds: Builds) -> None:
    results: dict[str, PublishResult] = {}
    threads = [
        threading.Thread(target=lambda b=b: results.__setitem__(b.name, bucket.publish(b)))
        for b in (builds.v1, builds.v2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    ids = {name: result.plan.build_id for name, result in results.items()}
    last = next(n for n, r in results.items() if r.plan.previous_build_id in ids.values())
    _serves(bucket, builds.v1 if last == "v1" else builds.v2)


def test_a_stale_plan_is_refused_before_its_html_is_written(bucket: Bucket, builds: Builds) -> None:
    stale, live = plan(scan_build(builds.v1), bucket.target, bucket.s3)
    bucket.publish(builds.v2)  # another publish goes first
    lock = PublishLock(bucket.s3, bucket.name, bucket.target.lock_key)
    with lock.held(), pytest.raises(PublishConflict, match="live UI manifest changed"):
        execute(stale, live, builds.v1, bucket.target, s3=bucket.s3, cloudfront=None, lock=lock)
    _serves(bucket, builds.v2)


def test_cli_publish_prints_the_plan_then_the_json_outcome(bucket: Bucket, builds: Builds) -> None:
    runner = CliRunner()
    dist = builds.app / "ui" / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    shutil.copytree(builds.v1, dist)
    args = ["ui", "publish", str(builds.app), "--bucket", bucket.name,
            "--endpoint-url", bucket.endpoint]  # fmt: skip
    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Plan for s3://" in dry.stdout and "upload      index.html" in dry.stdout
    assert read_live_state(bucket.s3, bucket.target).etag is None
    done = runner.invoke(cli, [*args, "--json", "--grace", "30m"])
    assert done.exit_code == 0, done.output
    outcome = json.loads(done.stdout)
    assert {k: outcome[k] for k in ("uploaded", "deleted", "unchanged", "invalidated")} == {
        "uploaded": 4, "deleted": 0, "unchanged": 0, "invalidated": []}  # fmt: skip
    assert outcome["bytes_uploaded"] == scan_build(builds.v1).total_size
    bad = runner.invoke(cli, [*args, "--grace", "soon"])
    assert bad.exit_code == 2 and "--grace" in bad.stderr
    missing = runner.invoke(cli, ["ui", "publish", str(builds.app), "--bucket", "no-such-bucket",
                                  "--endpoint-url", bucket.endpoint])  # fmt: skip
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: publishing to s3://no-such-bucket/")


def test_the_lease_is_renewed_while_its_holder_runs(bucket: Bucket) -> None:
    key = bucket.target.lock_key
    # A 2 s lease: renewals (every third of it) keep their slack on a loaded machine.
    holder = PublishLock(bucket.s3, bucket.name, key, ttl=2, wait=0)
    rival = PublishLock(bucket.s3, bucket.name, key, ttl=2, wait=0)
    with holder.held():
        end = time.monotonic() + 2 * holder.ttl  # well past the lease without renewals
        while time.monotonic() < end:
            with pytest.raises(PublishBusy):
                rival.acquire()
            time.sleep(0.1)
        holder.check()
    assert rival.acquire() == {}  # released at the end of the block: nothing orphaned


def test_a_holder_whose_lease_ran_out_and_was_taken_over_stops(bucket: Bucket) -> None:
    key = bucket.target.lock_key
    stalled = PublishLock(bucket.s3, bucket.name, key, ttl=0.3, wait=0)
    stalled.acquire()  # no heartbeat: it stalls
    stalled.renew(pending={"assets/a-Ab12Cd34.js": "sha"})
    rival = PublishLock(bucket.s3, bucket.name, key, ttl=30, wait=5)
    assert rival.acquire() == {"assets/a-Ab12Cd34.js": "sha"}  # after the lease ran out
    with pytest.raises(PublishConflict):
        stalled.check()
    with pytest.raises(PublishConflict):
        stalled.renew()
    rival.release()
