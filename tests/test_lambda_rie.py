"""The RIE harness: a real Runtime Interface Emulator running ``awslambdaric``.

The handler is ``tests.lambda_echo.handler`` (no app, no AWS): these tests pin how
the RIE behaves, which ``llamaws serve --lambda`` relies on.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamaws.local.rie import RieContainer, ensure_rie, rie_arch, rie_cache_path

from .support import ROOT, wait_until

ECHO = "tests.lambda_echo.handler"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[RieContainer]:
    log = (tmp_path / "rie.log").open("wb")
    with RieContainer(ECHO, env={"LLAMAWS_MARK": "on"}, cwd=ROOT, timeout=1, log=log) as running:
        yield running
    log.close()


def test_rie_binary_is_found_and_executable() -> None:
    path = ensure_rie()
    assert path.is_file() and os.access(path, os.X_OK)
    assert rie_cache_path().name == f"aws-lambda-rie-{rie_arch()}"


def test_rie_arch_follows_the_machine_type() -> None:
    assert rie_arch("aarch64") == "arm64"
    assert rie_arch("AMD64") == "x86_64"


def test_invocation_returns_the_handler_result_from_one_warm_runtime(
    container: RieContainer,
) -> None:
    first = container.invoke({"n": 1}).result()
    second = container.invoke({"n": 2}).result()
    assert first["event"] == {"n": 1} and second["event"] == {"n": 2}
    assert first["pid"] == second["pid"] and second["invocations"] == 2
    assert first["function_name"] == "llamaws-local"
    assert first["env"] == {"LLAMAWS_MARK": "on"}
    assert 0 < second["remaining_ms"] <= 1000


def test_handler_exception_is_a_function_error(container: RieContainer) -> None:
    invocation = container.invoke({"raise": "nope"})
    assert invocation.status == 200
    assert invocation.function_error == "ValueError"
    assert invocation.payload["errorMessage"] == "nope"
    assert container.invoke({"n": 3}).function_error is None


def test_timeout_kills_the_runtime_and_the_next_invocation_cold_starts(
    container: RieContainer,
) -> None:
    before = container.invoke({}).result()["pid"]
    timed_out = container.invoke({"sleep": 3})
    assert timed_out.function_error == "Timeout"
    after = container.invoke({}).result()
    assert after["pid"] != before and after["invocations"] == 1


def test_concurrent_invocations_are_serialised_not_crashing_the_rie(
    container: RieContainer,
) -> None:
    results: list[int] = []

    def call(k: int) -> None:
        results.append(container.invoke({"sleep": 0.1, "k": k}).result()["event"]["k"])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results) == [0, 1, 2, 3]
    assert container.alive()


def test_two_containers_run_side_by_side(container: RieContainer) -> None:
    with RieContainer(ECHO, cwd=ROOT, log=subprocess.DEVNULL) as second:
        assert second.invoke({}).result()["pid"] != container.invoke({}).result()["pid"]


def test_stopping_a_container_ends_its_runtime_process() -> None:
    with RieContainer(ECHO, cwd=ROOT, log=subprocess.DEVNULL) as container:
        pid = container.invoke({}).result()["pid"]
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="runtime gone")
