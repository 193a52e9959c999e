"""Log lines of a run carry its ``handler_id`` and ``run_id`` in Lambda's JSON log format.

Records are formatted by awslambdaric's own ``JsonFormatter`` (what the managed runtime
uses when the function's log format is JSON, as the stack sets it) and by the streaming
runtime loop's, through the real Lambda container in process (moto for the table);
then the streaming loop itself, in its own process behind a local Runtime API, writes
such lines with the invocation's request id.
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
from llamaws.adapter.log_context import JsonLineFormatter

from .engines import MotoServer
from .lambda_service import LambdaService, moto_settings
from .support import wait_until

pytestmark = pytest.mark.timeout(90)


class JsonLines(logging.Handler):
    """Keeps each record as the JSON line Lambda would write."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def saying(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if text in str(line.get("message"))]


@pytest.fixture(params=["managed runtime", "streaming loop"])
def lines(request: pytest.FixtureRequest) -> Iterator[JsonLines]:
    """The managed runtime's formatter (awslambdaric), or llamaws's streaming loop's."""
    formatter = JsonFormatter() if request.param == "managed runtime" else JsonLineFormatter()
    handler = JsonLines(formatter)
    logger = logging.getLogger("chatty")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def write_chatty_app(root: Path) -> Path:
    """An app whose one step logs ``saying <word>`` on the logger ``chatty``."""
    app = root / "chatty"
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
    return app


@pytest.fixture
def service(
    tmp_path: Path, moto_server: MotoServer, dynamo_table_name: str
) -> Iterator[LambdaService]:
    app = write_chatty_app(tmp_path)
    settings = moto_settings(app, moto_server.endpoint, dynamo_table_name)
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


def test_the_streaming_loop_writes_json_lines_with_the_runs_ids(
    tmp_path: Path, moto_server: MotoServer, dynamo_table_name: str
) -> None:
    from llamaws.local.lambda_events import http_event
    from llamaws.local.runtime_api import LoopContainer

    app = write_chatty_app(tmp_path)
    env = {
        "LLAMAWS_APP_DIR": str(app),
        "LLAMAWS_TABLE": dynamo_table_name,
        "LLAMAWS_CREATE_TABLE": "1",
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.endpoint,
        "LLAMAWS_AUTH": "none",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",  # what Lambda sets for LoggingConfig.LogFormat JSON
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
    }
    body = json.dumps({"start_event": {"word": "streamed"}}).encode()
    event = http_event(
        "POST", "/deployments/chatty/workflows/say/run", "",
        [("host", "fn.lambda-url.us-east-1.on.aws"), ("content-type", "application/json")],
        body,
    )  # fmt: skip
    log_path = tmp_path / "function.log"
    with log_path.open("wb") as log, LoopContainer(env=env, cwd=app, timeout=30, log=log) as fn:
        pieces = fn.open(event).collect()
    answer = json.loads(b"".join(p.data for p in pieces if p.kind == "chunk"))
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    (line,) = [x for x in lines if x["message"] == "saying streamed"]
    assert line["handler_id"] == answer["handler_id"]
    assert line["run_id"] == answer["run_id"]
    assert line["level"] == "INFO" and line["logger"] == "chatty" and line["requestId"]
