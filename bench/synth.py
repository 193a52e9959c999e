"""``llamaws synth`` and the Lambda bundle (a script: prints figures, asserts nothing).

    uv run python -m bench.synth [--repeat 3]

- **Synth**: ``llamaws synth examples/hello`` of an unchanged app (bundle and cdk-nag
  findings reused) against a bare CDK app that declares the same resources with plain
  CDK constructs and the same bundle zip (no settings, no checks), each a fresh process
  (jsii start included); wall and CPU time (user + system, node included), median of
  ``--repeat``, alternating. Goal: ratio <= 1.1. The first synth (bundle built from
  uv's cache, cdk-nag run) is printed too.
- **Bundle sizes**: ``examples/hitl`` for arm64 / Python 3.12 (the default target) and
  x86_64 / this machine's Python: zipped and unzipped, the largest entries.
- **Cold start with and without bytecode** (P1 of ``bench/lambda.py``, on the bundle):
  a fresh interpreter without site-packages (``-S``), working directory = the bundle of
  ``examples/hello`` (x86_64, this machine's Python), imports
  ``llamaws.adapter.handler`` and serves its first request (``GET
  /deployments/hello/workflows``, the table on a moto server); ``.pyc`` writing off, as
  on Lambda's read-only file system. Median of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from llamaws.adapter.config import resolve_deployment
from llamaws.builder.dependencies import Target
from llamaws.builder.lambda_bundle import Bundle, build_bundle, bundle_requirements
from llamaws.local.engine import start_local_engine
from llamaws.local.lambda_events import http_event

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
AWS_DUMMY = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}  # fmt: skip

BARE_APP = """
import sys
from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cf, aws_cloudfront_origins as origins
from aws_cdk import aws_dynamodb as ddb, aws_events as events, aws_events_targets as targets
from aws_cdk import aws_iam as iam, aws_lambda as lambda_, aws_lambda_destinations as dest
from aws_cdk import aws_logs as logs, aws_s3 as s3, aws_sqs as sqs

zip_path, outdir = sys.argv[1], sys.argv[2]
app = App(outdir=outdir)
stack = Stack(app, "bare-hello")
private = dict(block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
               encryption=s3.BucketEncryption.S3_MANAGED, removal_policy=RemovalPolicy.RETAIN)
logs_bucket = s3.Bucket(stack, "Logs", object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
                        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))], **private)
table = ddb.Table(stack, "Table",
                  partition_key=ddb.Attribute(name="PK", type=ddb.AttributeType.STRING),
                  sort_key=ddb.Attribute(name="SK", type=ddb.AttributeType.STRING),
                  billing_mode=ddb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute="expires_at",
                  point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                      point_in_time_recovery_enabled=True),
                  deletion_protection=True, removal_policy=RemovalPolicy.RETAIN)
table.add_global_secondary_index(index_name="GSI1",
    partition_key=ddb.Attribute(name="GSI1PK", type=ddb.AttributeType.STRING),
    sort_key=ddb.Attribute(name="GSI1SK", type=ddb.AttributeType.STRING))
spill = s3.Bucket(stack, "Spill", server_access_logs_bucket=logs_bucket,
                  lifecycle_rules=[s3.LifecycleRule(prefix="llamaws-spill/",
                                                    expiration=Duration.days(45))], **private)
group = logs.LogGroup(stack, "Group", retention=logs.RetentionDays.ONE_MONTH)
role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
queue = sqs.Queue(stack, "Failed", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
fn = lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12,
                      architecture=lambda_.Architecture.ARM_64,
                      handler="llamaws.adapter.handler.handler",
                      code=lambda_.Code.from_asset(zip_path), memory_size=1024,
                      timeout=Duration.seconds(300), role=role, log_group=group,
                      environment={"LLAMAWS_TABLE": table.table_name,
                                   "LLAMAWS_S3_BUCKET": spill.bucket_name,
                                   "LLAMAWS_SSM_PATH": "/llamaws/bare/env"})
table.grant_read_write_data(role)
spill.grant_read_write(role)
fn.configure_async_invoke(retry_attempts=2, on_failure=dest.SqsDestination(queue))
iam.Policy(stack, "Self", roles=[role], statements=[
    iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[fn.function_arn])])
url = fn.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
events.Rule(stack, "Sweep", schedule=events.Schedule.rate(Duration.minutes(5)),
            targets=[targets.LambdaFunction(fn, event=events.RuleTargetInput.from_object(
                {"llamaws": {"kind": "sweep"}}))])
api = cf.BehaviorOptions(origin=origins.FunctionUrlOrigin(url),
                         allowed_methods=cf.AllowedMethods.ALLOW_ALL,
                         cache_policy=cf.CachePolicy.CACHING_DISABLED,
                         origin_request_policy=cf.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                         viewer_protocol_policy=cf.ViewerProtocolPolicy.HTTPS_ONLY)
dist = cf.Distribution(stack, "Dist", default_behavior=api,
                       additional_behaviors={"/deployments/hello/*": api},
                       enable_logging=True, log_bucket=logs_bucket)
for name, value in {"ApiUrl": dist.distribution_domain_name, "TableName": table.table_name,
                    "FunctionName": fn.function_name, "FunctionUrl": url.url}.items():
    CfnOutput(stack, name, value=value)
app.synth()
"""

COLD_CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
from llamaws.adapter.handler import handler
t1 = time.perf_counter()
class Ctx:
    def get_remaining_time_in_millis(self): return 60000
result = handler(json.loads(os.environ["BENCH_EVENT"]), Ctx())
t2 = time.perf_counter()
assert result["statusCode"] == 200, result
print(json.dumps({"import": t1 - t0, "first_request": t2 - t1}))
"""


def _seconds(command: list[str], **kwargs: object) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its children) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {(done.stderr or done.stdout)[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def bench_synth(work: Path, repeat: int) -> None:
    app = work / "hello"
    shutil.copytree(ROOT / "examples" / "hello", app, ignore=shutil.ignore_patterns(".llamaws"))
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1"}
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    synth = [sys.executable, "-m", "llamaws.cli.main", "synth", str(app), "--out"]
    first, _ = _seconds([*synth, str(work / "warm")], env=env, cwd=ROOT)  # builds the bundle
    (bundle_zip,) = (app / ".llamaws" / "build").glob("lambda-*.zip")
    bare_script = work / "bare_app.py"
    bare_script.write_text(BARE_APP)
    bare = [sys.executable, str(bare_script), str(bundle_zip)]
    _seconds([*bare, str(work / "bare-warm")], env=env, cwd=work)
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for n in range(repeat):
        theirs.append(_seconds([*bare, str(work / f"bare-{n}")], env=env, cwd=work))
        ours.append(_seconds([*synth, str(work / f"ours-{n}")], env=env, cwd=ROOT))
    print(f"Synth (fresh process, median of {repeat}, alternating; unchanged app)")
    print(f"   first llamaws synth of the app (bundle built, cdk-nag run): {first:6.2f} s wall")
    for index, what in ((0, "wall time"), (1, "CPU time (user+sys, with node)")):
        o = statistics.median(r[index] for r in ours)
        b = statistics.median(r[index] for r in theirs)
        print(f"   {what}: bare CDK app, same resources {b:6.2f} s; "
              f"llamaws synth examples/hello (+cdk-nag) {o:6.2f} s; ratio {o / b:.2f}"
              "  (goal <= 1.1)")  # fmt: skip


def _bundle(app: Path, target: Target, out: Path, interpreter: str | None = None) -> Bundle:
    deployment = resolve_deployment(app)
    requirements = bundle_requirements(deployment, target, out)
    return build_bundle(deployment, requirements, target, out, interpreter=interpreter)


def bench_sizes(work: Path) -> None:
    print("Bundle of examples/hitl (zipped / unzipped; Lambda's limits 50 / 250 MB)")
    for label, target in (
        ("arm64, Python 3.12", Target("3.12", "aarch64-manylinux2014")),
        (f"x86_64, Python {HERE}", Target(HERE, "x86_64-manylinux2014")),
    ):
        started = time.perf_counter()
        bundle = _bundle(ROOT / "examples" / "hitl", target, work / "sizes")
        elapsed = time.perf_counter() - started
        bytecode = f"bytecode {bundle.bytecode}" if bundle.bytecode else "sources only"
        print(f"   {label} ({bytecode}, built in {elapsed:.1f} s): {bundle.summary()}")


def bench_bytecode(work: Path, repeat: int) -> None:
    engine = start_local_engine()
    try:
        target = Target(HERE, "x86_64-manylinux2014")
        hello = ROOT / "examples" / "hello"
        compiled = _bundle(hello, target, work / "pyc")
        sources = _bundle(hello, target, work / "sources", interpreter="")
        event = http_event("GET", "/deployments/hello/workflows", "", [], b"")
        table = f"bench-synth-{uuid.uuid4().hex[:8]}"
        env = {
            **AWS_DUMMY,
            "PATH": os.environ.get("PATH", ""),
            "LLAMAWS_AUTH": "none",
            "LLAMAWS_TABLE": table,
            "LLAMAWS_CREATE_TABLE": "1",
            "AWS_ENDPOINT_URL_DYNAMODB": engine.endpoint,
            "LLAMAWS_ASYNC_INVOKE_URL": "http://127.0.0.1:9/unused",
            "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's task root is read-only
            "BENCH_EVENT": json.dumps(event),
        }
        results: dict[str, list[dict[str, float]]] = {"pyc": [], "sources": []}
        for bundle in (compiled, sources):
            run_env = {**env, "LAMBDA_TASK_ROOT": str(bundle.directory)}
            _child(bundle.directory, run_env)  # creates the table; warms the OS file cache
        for _ in range(repeat):
            for name, bundle in (("pyc", compiled), ("sources", sources)):
                run_env = {**env, "LAMBDA_TASK_ROOT": str(bundle.directory)}
                results[name].append(_child(bundle.directory, run_env))
        print(f"Cold start from the bundle of examples/hello (x86_64, Python {HERE}; "
              f"fresh interpreter, -S, median of {repeat})")  # fmt: skip
        totals = {}
        for name, label in (("pyc", "precompiled bytecode"), ("sources", "sources only")):
            imp = statistics.median(r["import"] for r in results[name])
            first = statistics.median(r["first_request"] for r in results[name])
            totals[name] = statistics.median(r["wall"] for r in results[name])
            print(f"   {label:21s}: import {imp * 1000:5.0f} ms, first request "
                  f"{first * 1000:5.0f} ms, process {totals[name] * 1000:5.0f} ms")  # fmt: skip
        print(f"   ratio sources / bytecode: {totals['sources'] / totals['pyc']:.2f}")
    finally:
        engine.stop()


def _child(directory: Path, env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", textwrap.dedent(COLD_CHILD)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return {**json.loads(done.stdout), "wall": wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llamaws-bench-synth-") as tmp:
        work = Path(tmp)
        bench_sizes(work)
        bench_bytecode(work, max(args.repeat, 3))
        bench_synth(work, args.repeat)


if __name__ == "__main__":
    main()
