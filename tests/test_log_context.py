"""Log lines of a run carry its ``handler_id`` and ``run_id`` in Lambda's JSON log format.

Records are formatted by awslambdaric's own ``JsonFormatter`` (what the runtime uses
when the function's log format is JSON, as the stack sets it), through the real
Lambda container in process (moto for the table).
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awslambdaric.lambda_runtime_log_utils import JsonFormatter

from llamaws.adapter import log_context
from llamaws.adapter.lambda_runtime.container import ContainerSettings

from .engines import MotoServer
from .lambda_service import LambdaService
from .support import wait_until

pytestmark = pytest.mark.timeout(90)


class JsonLines(logging.Handler):
    """Keeps each record as the JSON line Lambda would write."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def saying(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if text in str(line.get("message"))]


@pytest.fixture
def lines() -> Iterator[JsonLines]:
    handler = JsonLines()
    logger = logging.getLogger("chatty")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def service(
    tmp_path: Path, moto_server: MotoServer, dynamo_table_name: str
) -> Iterator[LambdaService]:
    app = tmp_path / "chatty"
    (app / "src" / "chatty").mkdir(parents=True)
    (app / "pyproject.toml").write_text(
        '[project]\nname = "chatty"\nversion = "0.1.0"\n\n[tool.llamadeploy]\nname = "chatty"\n\n'
        '[tool.llamadeploy.workflows]\nsay = "chatty.workflows:say"\n'
    )
    (app / "src" / "chatty" / "__init__.py").write_text("")
    (app / "src" / "chatty" / "workflows.py").write_text(
        textwrap.dedent(
            """
            import logging

            from workflows import Workflow, step
            from workflows.events import StartEvent, StopEvent

            log = logging.getLogger("chatty")


            class Say(Workflow):
                @step
                async def say(self, ev: StartEvent) -> StopEvent:
                    log.info("saying %s", ev.get("word"))
                    return StopEvent(result=ev.get("word"))


            say = Say(timeout=None)
            """
        )
    )
    settings = ContainerSettings(
        app_dir=app,
        table=dynamo_table_name,
        dynamodb_endpoint=moto_server.endpoint,
        s3_endpoint=moto_server.endpoint,
        s3_bucket="llamaws-spill",
        create_table=True,
        auth="none",
    )
    started = LambdaService(settings, containers=1)
    yield started
    started.close()


def run_of(service: LambdaService, handler_id: str) -> str:
    status, _, raw = service.request("GET", f"/deployments/chatty/handlers/{handler_id}")
    assert status == 200, raw
    return str(json.loads(raw)["run_id"])


def test_lines_of_an_inline_run_carry_its_handler_and_run(
    service: LambdaService, lines: JsonLines
) -> None:
    status, _, raw = service.request(
        "POST", "/deployments/chatty/workflows/say/run", json_body={"start_event": {"word": "hi"}}
    )
    assert status == 200, raw
    handler_id = json.loads(raw)["handler_id"]
    (line,) = lines.saying("saying hi")
    assert line["handler_id"] == handler_id
    assert line["run_id"] == run_of(service, handler_id)
    assert line["logger"] == "chatty" and line["level"] == "INFO"


def test_lines_of_a_run_driven_by_a_continue_invocation_carry_its_ids(
    service: LambdaService, lines: JsonLines
) -> None:
    status, _, raw = service.request(
        "POST",
        "/deployments/chatty/workflows/say/run-nowait",
        json_body={"start_event": {"word": "later"}},
    )
    assert status == 200, raw
    handler_id = json.loads(raw)["handler_id"]
    wait_until(lambda: lines.saying("saying later") and service.idle(), what="the run")
    (line,) = lines.saying("saying later")
    assert line["handler_id"] == handler_id
    assert line["run_id"] == run_of(service, handler_id)


def test_a_line_outside_any_run_has_neither_field(lines: JsonLines) -> None:
    log_context.install()
    logging.getLogger("chatty").info("no run here")
    (line,) = lines.saying("no run here")
    assert "handler_id" not in line and "run_id" not in line


def test_the_handler_of_an_event_is_found_in_paths_and_continue_payloads() -> None:
    of = log_context.handler_id_of_event
    assert of({"rawPath": "/deployments/x/handlers/abc123/cancel"}) == "abc123"
    assert of({"rawPath": "/deployments/x/events/h1"}) == "h1"
    assert of({"path": "/deployments/x/results/h2"}) == "h2"
    assert of({"llamaws": {"kind": "continue", "handler_id": "h3"}}) == "h3"
    assert of({"rawPath": "/deployments/x/workflows/say/run"}) is None
    assert of({"llamaws": {"kind": "sweep"}}) is None
