"""A bounded, deterministic schemathesis run against ``llamaws serve`` of the examples.

Every operation of the served ``openapi.json`` gets a fixed number of generated
requests (schema-conformant and not), seeded so a run repeats exactly; every
answer must be below 500 and match the schema (documented status, content type,
body). Handler-id paths sometimes point at real handlers: finished ones and runs
waiting for input (never a stream that waits forever: a waiting run's stream only
ends with the run).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .support import EXAMPLES, Emulator, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EXAMPLES_PER_OPERATION = 100
"""Per operation and generation mode (positive, negative): 200 requests an operation."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Target:
    """One served example, with real handlers the generated requests may point at."""

    name: str
    emulator: Emulator
    finished: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    skip: set[tuple[str, str]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"{self.emulator.url}/deployments/{self.name}"

    def aim(self, case: Case[Any]) -> None:
        """Point a generated handler id at a real handler, now and then, deterministically."""
        generated = case.path_parameters.get("handler_id") if case.path_parameters else None
        if not isinstance(generated, str) or not generated:
            return
        pick = sum(map(ord, generated))
        if case.method == "GET" and case.path == "/events/{handler_id}":
            # A waiting run's stream never ends, and a fuzzed run-nowait may have created
            # one under this very id: only finished runs, or ids nothing can have.
            real, prefix = self.finished, "nx-"
        elif case.path.endswith("/cancel"):
            real, prefix = [], ""  # cancelling the waiting runs would end the fun
        elif case.method == "POST" and case.path == "/events/{handler_id}":
            real, prefix = self.waiting * 3 + self.finished, ""
        else:
            real, prefix = self.finished + self.waiting, ""
        if real and pick % 2 == 0:
            case.path_parameters["handler_id"] = real[pick // 2 % len(real)]
        elif prefix:
            case.path_parameters["handler_id"] = f"{prefix}{generated}"[:128]


def start_target(tmp_path_factory: pytest.TempPathFactory, name: str) -> Target:
    app_dir = tmp_path_factory.mktemp(name) / name
    shutil.copytree(EXAMPLES / name, app_dir)
    return Target(name, Emulator(Path(app_dir), free_port()).start())


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_target(tmp_path_factory, "hello")
    with httpx.Client(base_url=target.base) as http:
        for name in ("Ada", "Bo"):
            done = http.post("/workflows/greet/run", json={"start_event": {"name": name}})
            target.finished.append(done.json()["handler_id"])
    yield target
    target.emulator.stop()


@pytest.fixture(scope="module")
def hitl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_target(tmp_path_factory, "hitl")
    # `run` waits for a person: generated runs of `ask` / `quiz` would never return.
    target.skip.add(("POST", "/workflows/{name}/run"))
    with httpx.Client(base_url=target.base) as http:
        for workflow in ("ask", "quiz"):
            started = http.post(f"/workflows/{workflow}/run-nowait", json={"start_event": {}})
            target.waiting.append(started.json()["handler_id"])
        answered = http.post("/workflows/ask/run-nowait", json={"start_event": {}}).json()
        answer = {"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}
        wait_until(
            lambda: http.post(f"/events/{answered['handler_id']}", json=answer).status_code == 200
        )
        wait_until(lambda: http.get(f"/handlers/{answered['handler_id']}").status_code == 200)
        target.finished.append(answered["handler_id"])
    yield target
    target.emulator.stop()


def fuzz(target: Target) -> tuple[int, list[str]]:
    """Run every operation's generated cases; (requests sent, failure reports)."""
    schema = schemathesis.openapi.from_url(f"{target.base}/openapi.json")
    session = requests.Session()
    sent: list[int] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here
        if (operation.method.upper(), operation.path) in target.skip:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases = operation.as_strategy(generation_mode=mode)
            fuzz_operation(target, cases, session, sent, failures)
    return len(sent), failures


def fuzz_operation(
    target: Target,
    cases: Any,
    session: requests.Session,
    sent: list[int],
    failures: list[str],
) -> None:
    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        target.aim(case)
        response = case.call(base_url=target.base, session=session, timeout=15)
        sent.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: {str(exc)[:600]}"
            )

    # An operation without parameters or body has no invalid input to generate.
    with contextlib.suppress(Unsatisfiable):
        run()


@pytest.mark.parametrize("example", ["hello", "hitl"])
def test_generated_requests_get_no_server_error_and_match_the_schema(
    request: pytest.FixtureRequest, example: str
) -> None:
    target: Target = request.getfixturevalue(example)
    started = time.monotonic()
    sent, failures = fuzz(target)
    print(f"{example}: {sent} requests in {time.monotonic() - started:.1f}s")
    assert sent >= 1000
    assert failures == [], "\n".join(dict.fromkeys(failures))  # each distinct failure once
    assert "Traceback" not in target.emulator.logs()


def test_drained_stream_is_a_bodyless_204_that_logs_nothing(hello: Target) -> None:
    with httpx.Client(base_url=hello.base) as http:
        response = http.get(f"/events/{hello.finished[0]}")
    assert response.status_code == 204 and response.content == b""
    assert "LocalProtocolError" not in hello.emulator.logs()


def test_emulator_applies_lambdas_request_limit_and_says_how_to_lift_it(hello: Target) -> None:
    big = {"start_event": {"name": "x" * (6 * 1024 * 1024)}}
    with httpx.Client(base_url=hello.base, timeout=30) as http:
        refused = http.post("/workflows/greet/run-nowait", json=big)
    assert refused.status_code == 413
    assert "--no-request-limit" in refused.json()["detail"]


def test_no_request_limit_flag_lifts_it(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(example_copy("hello"), "--no-request-limit")
    big: dict[str, Any] = {"start_event": {"name": "x" * (6 * 1024 * 1024)}}
    accepted = httpx.post(
        f"{emulator.url}/deployments/hello/workflows/greet/run-nowait", json=big, timeout=30
    )
    assert accepted.status_code == 200
