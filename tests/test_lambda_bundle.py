"""The Lambda bundle (``builder/lambda_bundle.py``).

Bundles are built for this machine's Python (the bytecode needs an interpreter of the
target version) and x86_64 with real ``uv pip install --python-platform`` runs: wheels
come from PyPI once, then from uv's cache (``~/.cache/uv``). The end-to-end test runs
the bundle under the Lambda Runtime Interface Emulator with nothing but the bundle and
``awslambdaric`` (what Lambda's managed runtime adds) on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.config import resolve_deployment
from llamaws.builder import lambda_bundle
from llamaws.builder.dependencies import Target, resolve, uv_binary
from llamaws.builder.lambda_bundle import (
    Bundle,
    BundleError,
    MissingWheelError,
    build_bundle,
    bundle_requirements,
)
from llamaws.local.lambda_events import http_event
from llamaws.local.lambda_mode import AsyncInvoker, ContainerPool
from llamaws.local.rie import RieContainer

from .engines import MotoServer
from .support import EXAMPLES, wait_until

pytestmark = pytest.mark.slow

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
TARGET = Target(HERE, "x86_64-manylinux2014")
SECRET = "sk-bundle-3f9a01c2"
NEVER_IN_BUNDLE = ("typer", "jinja2", "watchfiles", "awslambdaric", "aws_cdk", "cdk_nag",
                   "constructs", "cfnlint", "moto", "pytest", "uv")  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundle")


@pytest.fixture(scope="module")
def hitl_app(work: Path) -> Path:
    """examples/hitl with an env file, a data file read by relative path, and junk."""
    app = work / "hitl"
    shutil.copytree(EXAMPLES / "hitl", app, ignore=shutil.ignore_patterns(".llamaws", "cdk.out"))
    (app / ".env").write_text(f"API_KEY={SECRET}\n")
    (app / "prompts").mkdir()
    (app / "prompts" / "default.txt").write_text("Which colour?\n")
    (app / "node_modules" / "left-pad").mkdir(parents=True)
    (app / "node_modules" / "left-pad" / "index.js").write_text("//\n")
    (app / "workflows.db").write_bytes(b"sqlite")
    (app / "tests").mkdir()
    (app / "tests" / "test_app_own.py").write_text("def test_it() -> None: ...\n")
    (app / ".github" / "workflows").mkdir(parents=True)
    (app / ".github" / "workflows" / "llamaws.yml").write_text("name: llamaws\n")
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(
        text.replace(
            "[tool.llamadeploy]\n",
            '[tool.llamadeploy]\nenv_files = [".env"]\nrequired_env_vars = ["API_KEY"]\n',
            1,
        )
    )
    return app


@pytest.fixture(scope="module")
def requirements(hitl_app: Path) -> list[str]:
    return bundle_requirements(resolve_deployment(hitl_app), TARGET, hitl_app / ".llamaws")


@pytest.fixture(scope="module")
def bundle(hitl_app: Path, requirements: list[str], work: Path) -> Bundle:
    return build_bundle(resolve_deployment(hitl_app), requirements, TARGET, work / "out")


def _dist_infos(directory: Path) -> set[str]:
    names = set()
    for info in directory.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        names.add(f"{name.lower().replace('_', '-')}=={version}")
    return names


def test_bundle_installs_exactly_the_resolution(bundle: Bundle, hitl_app: Path) -> None:
    resolution = resolve(hitl_app, TARGET, profile="lambda")
    expected = {line.lower().replace("_", "-") for line in resolution.requirements}
    assert _dist_infos(bundle.directory) == expected
    for name in NEVER_IN_BUNDLE:
        assert not (bundle.directory / name).exists(), name
    assert not (bundle.directory / "bin").exists()


def test_app_is_laid_out_at_the_task_root_with_the_handler_beside_it(bundle: Bundle) -> None:
    root = bundle.directory
    assert (root / "pyproject.toml").is_file()
    assert (root / "src" / "hitl" / "workflows.py").is_file()
    assert (root / "prompts" / "default.txt").read_text() == "Which colour?\n"
    assert (root / "llamaws" / "adapter" / "handler.py").is_file()
    assert not (root / "llamaws" / "__init__.py").exists()  # a namespace, as installed
    # The streaming loop's AWS_LAMBDA_EXEC_WRAPPER: Lambda runs it only if executable.
    wrapper = zipfile.ZipFile(bundle.zip_path).getinfo(
        "llamaws/adapter/lambda_runtime/exec_wrapper"
    )
    assert (wrapper.external_attr >> 16) & 0o777 == 0o755


def test_env_files_databases_node_modules_and_the_apps_tests_stay_out(bundle: Bundle) -> None:
    names = zipfile.ZipFile(bundle.zip_path).namelist()
    assert not [n for n in names if n.startswith(("node_modules/", ".env", "workflows.db"))]
    assert not [n for n in names if n.startswith(".llamaws/")]
    # The app's own tests and CI stay out (a `tests` package there would shadow the one
    # dynamodb-json installs at the top level).
    assert "tests/test_app_own.py" not in names
    assert not [n for n in names if n.startswith(".github/")]
    for name in names:
        data = zipfile.ZipFile(bundle.zip_path).read(name) if name.endswith(".txt") else b""
        assert SECRET.encode() not in data


def test_bytecode_is_precompiled_for_the_target_python(bundle: Bundle) -> None:
    tag = sys.implementation.cache_tag
    assert bundle.bytecode is not None and bundle.bytecode.startswith(HERE)
    compiled = bundle.directory / "src" / "hitl" / "__pycache__" / f"workflows.{tag}.pyc"
    header = compiled.read_bytes()[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, not checked
    assert (bundle.directory / "pydantic" / "__pycache__" / f"main.{tag}.pyc").is_file()


def test_zip_is_byte_identical_when_built_again(
    bundle: Bundle, hitl_app: Path, requirements: list[str], work: Path
) -> None:
    again = build_bundle(
        resolve_deployment(hitl_app), requirements, TARGET, work / "again", force=True
    )
    assert not again.reused
    assert again.zip_path.read_bytes() == bundle.zip_path.read_bytes()
    info = zipfile.ZipFile(bundle.zip_path).infolist()
    assert [i.filename for i in info] == sorted(i.filename for i in info)
    assert {i.date_time for i in info} == {(1980, 1, 1, 0, 0, 0)}


def test_unchanged_inputs_reuse_the_bundle_and_a_changed_file_rebuilds_it(
    bundle: Bundle, hitl_app: Path, requirements: list[str], work: Path
) -> None:
    deployment = resolve_deployment(hitl_app)
    reused = build_bundle(deployment, requirements, TARGET, work / "out")
    assert reused.reused and reused.fingerprint == bundle.fingerprint
    prompt = hitl_app / "prompts" / "default.txt"
    prompt.write_text("Which shape?\n")
    try:
        changed = build_bundle(deployment, requirements, TARGET, work / "changed")
        assert not changed.reused and changed.fingerprint != bundle.fingerprint
    finally:
        prompt.write_text("Which colour?\n")


def test_sizes_are_checked_against_lambda_limits_naming_the_largest(
    bundle: Bundle, hitl_app: Path, requirements: list[str], work: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    assert bundle.unzipped_bytes < lambda_bundle.MAX_UNZIPPED_BYTES
    assert bundle.zipped_bytes == bundle.zip_path.stat().st_size < lambda_bundle.MAX_ZIPPED_BYTES
    assert bundle.largest[0][0] == "botocore"
    monkeypatch.setattr(lambda_bundle, "MAX_UNZIPPED_BYTES", 10 * 2**20)
    with pytest.raises(BundleError, match=r"unzipped, over Lambda's 10.0 MB; largest: botocore"):
        build_bundle(resolve_deployment(hitl_app), requirements, TARGET, work / "big", force=True)


def test_a_pin_without_a_wheel_for_the_target_is_named_in_one_line(
    hitl_app: Path, work: Path
) -> None:
    # PyYAML 5.4.1 has no CPython 3.12 wheels (only an sdist).
    target = Target("3.12", "aarch64-manylinux2014")
    with pytest.raises(MissingWheelError) as raised:
        build_bundle(
            resolve_deployment(hitl_app), ["pyyaml==5.4.1"], target, work / "nowheel",
            interpreter="",
        )  # fmt: skip
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("pyyaml==5.4.1 has no wheel for Python 3.12 on aarch64-manylinux2014")


def test_an_app_entry_named_like_a_package_is_refused(
    hitl_app: Path, requirements: list[str], work: Path
) -> None:
    clash = work / "clash"
    shutil.copytree(hitl_app, clash)
    (clash / "yaml").mkdir()
    (clash / "yaml" / "notes.md").write_text("mine\n")
    with pytest.raises(BundleError, match="would overwrite the installed package entry 'yaml'"):
        build_bundle(resolve_deployment(clash), requirements, TARGET, work / "clash-out")


# -- the bundle under the Lambda runtime emulator ---------------------------------


@pytest.fixture(scope="module")
def lambda_runtime() -> Path:
    """What Lambda's managed runtime puts beside the task root: ``awslambdaric``.

    Installed once for this machine into ``~/.cache/llamaws/lambda-runtime``.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = base / "llamaws" / "lambda-runtime" / f"awslambdaric-4.2.2-py{HERE}"
    if not (target / "awslambdaric").is_dir():
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(
            [uv_binary(), "pip", "install", "--quiet", "--target", str(partial),
             "--python", sys.executable, "awslambdaric==4.2.2"],
            check=True, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


@pytest.fixture
def runtime_python(tmp_path: Path) -> str:
    """This interpreter without any site-packages (``-S``): only PYTHONPATH and the cwd."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def bundled_function(
    bundle: Bundle,
    lambda_runtime: Path,
    runtime_python: str,
    moto_server: MotoServer,
    dynamo_table_name: str,
    tmp_path: Path,
) -> Iterator[ContainerPool[RieContainer]]:
    import boto3

    from llamaws.adapter.store.table import create_table

    create_table(boto3.client("dynamodb", endpoint_url=moto_server.endpoint), dynamo_table_name)
    # The env file is not in the bundle: the required API_KEY must come from SSM.
    boto3.client("ssm", endpoint_url=moto_server.endpoint).put_parameter(
        Name=f"/llamaws/{dynamo_table_name}/env/API_KEY", Value=SECRET, Type="SecureString"
    )
    log = (tmp_path / "function.log").open("wb")
    holder: dict[str, str] = {}

    def container() -> RieContainer:
        env = {
            **_function_env(bundle, moto_server, dynamo_table_name, holder["url"]),
            "PYTHONPATH": str(lambda_runtime),
        }
        return RieContainer(
            "llamaws.adapter.handler.handler",
            env=env,
            cwd=bundle.directory,
            python=runtime_python,
            timeout=60,
            log=log,
            die_with_parent=True,
        )

    pool = ContainerPool(container, 2)
    invoker = AsyncInvoker(pool)
    holder["url"] = invoker.url
    invoker.start()
    try:
        yield pool
    finally:
        invoker.stop()
        pool.close()
        log.close()


def _function_env(
    bundle: Bundle, moto_server: MotoServer, table: str, invoke_url: str
) -> dict[str, str]:
    return {
        "LLAMAWS_AUTH": "none",  # the API's auth is tested elsewhere
        "LLAMAWS_TABLE": table,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.endpoint,
        "AWS_ENDPOINT_URL_SSM": moto_server.endpoint,
        "LLAMAWS_SSM_PATH": f"/llamaws/{table}/env",
        "LLAMAWS_ASYNC_INVOKE_URL": invoke_url,
        "LAMBDA_TASK_ROOT": str(bundle.directory),
        "PYTHONNOUSERSITE": "1",
    }


def call(
    pool: ContainerPool[RieContainer], method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = [("host", "bundle.test"), ("content-type", "application/json")]
    path, _, query = path.partition("?")
    event = http_event(method, path, query, headers, raw)
    response = pool.invoke(event).result()
    text = response.get("body") or ""
    return response["statusCode"], json.loads(text) if text.startswith(("{", "[")) else text


def test_bundle_alone_serves_a_run_and_a_hitl_answer_under_the_rie(
    bundled_function: ContainerPool[RieContainer], bundle: Bundle
) -> None:
    base = "/deployments/hitl"
    status, started = call(
        bundled_function, "POST", f"{base}/workflows/ask/run-nowait",
        {"start_event": {"prompt": "Colour?"}},
    )  # fmt: skip
    assert status == 200, started
    handler_id = started["handler_id"]

    def prompted() -> bool:
        _, events = call(bundled_function, "GET", f"{base}/events/{handler_id}?after_sequence=-1")
        return "PromptEvent" in str(events)

    wait_until(prompted, timeout=60, interval=0.2, what="the run to ask for input")
    status, sent = call(
        bundled_function, "POST", f"{base}/events/{handler_id}",
        {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}},
    )  # fmt: skip
    assert status == 200, sent

    def finished() -> dict[str, Any] | None:
        code, handler = call(bundled_function, "GET", f"{base}/handlers/{handler_id}")
        return handler if code == 200 and handler.get("status") == "completed" else None

    done = wait_until(finished, timeout=60, interval=0.2, what="the run to finish")
    assert done["result"]["value"] == {"result": "You said: blue"}
    # The runtime process imported llamaws and the app from the bundle, nothing else.
    probe = json.loads(
        subprocess.run(
            [sys.executable, "-S", "-c", textwrap.dedent(
                """
                import json, sys
                import llamaws.adapter.handler, hitl, yaml
                print(json.dumps([m.__file__ for m in (llamaws.adapter.handler, yaml)]))
                """
            )],
            cwd=bundle.directory, env={"PYTHONPATH": f"{bundle.directory / 'src'}"},
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert all(path.startswith(str(bundle.directory)) for path in probe)


def test_bundle_streams_through_its_exec_wrapper_under_the_rie(
    bundled_function: ContainerPool[RieContainer],
    bundle: Bundle,
    runtime_python: str,
    moto_server: MotoServer,
    dynamo_table_name: str,
    tmp_path: Path,
) -> None:
    # What Lambda's Python runtime does with AWS_LAMBDA_EXEC_WRAPPER set: run the wrapper
    # with its interpreter and its own bootstrap; the wrapper starts the streaming loop
    # from the bundle (no awslambdaric on the path this time).
    wrapper = bundle.directory / "llamaws" / "adapter" / "lambda_runtime" / "exec_wrapper"
    env = _function_env(bundle, moto_server, dynamo_table_name, "http://127.0.0.1:9/unused")
    log = (tmp_path / "streaming.log").open("wb")
    command = [str(wrapper), runtime_python, "/var/runtime/bootstrap.py"]
    with RieContainer(
        "unused", env=env, cwd=bundle.directory, python=runtime_python, timeout=60, log=log,
        command=command,
    ) as container:  # fmt: skip
        event = http_event("GET", "/deployments/hitl/workflows", "", [("host", "b.test")], b"")
        answer = container.invoke(event)
    log.close()
    head, delimiter, content = answer.body.partition(b"\x00" * 8)
    assert delimiter, (tmp_path / "streaming.log").read_text()[-3000:]
    assert json.loads(head)["statusCode"] == 200
    assert {"ask", "quiz"} <= set(json.loads(content)["workflows"])
