"""The UI dev server: env contract, start/stop/reuse, proxy (HTTP, streaming, websockets)."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from llamaws.local.proxy import UIProxy, proxy_routes
from llamaws.local.ui_dev import port_is_listening

from .support import EXAMPLES, Emulator, free_port, wait_until

FAKE_SERVER = Path(__file__).parent / "fixtures" / "fake_ui_server.py"
UI = "/deployments/hello/ui"


def make_ui_app(root: Path, dev_script: str) -> Path:
    """examples/hello plus a UI whose ``fake-dev`` script is ``dev_script``."""
    app = root / "hello"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns("workflows.db*"))
    with (app / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.llamadeploy.ui]\ndirectory = "ui"\nserve_command = "fake-dev"\n')
    (app / "ui").mkdir()
    package = {"name": "fake-ui", "private": True, "scripts": {"fake-dev": dev_script}}
    (app / "ui" / "package.json").write_text(json.dumps(package))
    return app


FAKE_DEV = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_SERVER))}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, int]]:
    """One emulator whose UI dev server is the fake server (started by the emulator)."""
    app = make_ui_app(tmp_path_factory.mktemp("proxy"), FAKE_DEV)
    ui_port = free_port()
    emulator = Emulator(
        app, free_port(), ["--ui-port", str(ui_port)], {"PUBLIC_GREETING": "hi"}
    ).start()
    wait_until(lambda: port_is_listening(ui_port), what="the fake dev server")
    yield emulator, ui_port
    emulator.stop()


def test_dev_server_started_with_env_contract(proxied: tuple[Emulator, int]) -> None:
    emulator, ui_port = proxied
    env = httpx.get(f"{emulator.url}{UI}/env").json()
    assert env["PORT"] == str(ui_port)
    assert env["LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH"] == UI
    assert env["LLAMA_DEPLOY_DEPLOYMENT_NAME"] == "hello"
    assert env["LLAMA_DEPLOY_DEPLOYMENT_URL_ID"] == "hello"
    assert env["LLAMA_DEPLOY_SERVER_PORT"] == str(emulator.port)
    assert env["GREETING"] == "hi"  # PUBLIC_GREETING exported as GREETING
    assert "[ui] " in emulator.logs() or "starting the UI dev server" in emulator.logs()


def test_proxy_keeps_method_path_query_body_and_strips_hop_by_hop(
    proxied: tuple[Emulator, int],
) -> None:
    emulator, _ = proxied
    response = httpx.put(
        f"{emulator.url}{UI}/echo/a%2Fb/c?x=1&y=%20",
        content=b"payload",
        headers={"X-Custom": "yes", "Connection": "keep-alive, X-Hop", "X-Hop": "1"},
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == f"{UI}/echo/a%2Fb/c"
    assert seen["query"] == "x=1&y=%20"
    assert seen["body"] == "payload"
    headers = dict(seen["headers"])
    assert headers["x-custom"] == "yes"
    assert "x-hop" not in headers  # named in Connection: hop-by-hop
    assert headers.get("connection", "keep-alive") == "keep-alive"  # the proxy's own
    assert headers["x-forwarded-host"] == f"127.0.0.1:{emulator.port}"
    assert response.headers["x-upstream"] == "fake"
    assert response.headers["set-cookie"] == "a=1"


def test_proxy_streams_request_body(proxied: tuple[Emulator, int]) -> None:
    emulator, _ = proxied

    def chunks() -> Iterator[bytes]:
        yield b"one,"
        yield b"two"

    response = httpx.post(f"{emulator.url}{UI}/echo/upload", content=chunks())
    assert response.json()["body"] == "one,two"


def test_proxy_streams_response_body(proxied: tuple[Emulator, int]) -> None:
    emulator, _ = proxied
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{emulator.url}{UI}/stream") as response,
    ):
        lines = response.iter_lines()
        # The first chunk arrives while the upstream is still holding the rest back.
        assert next(lines) == "first"
        assert client.post(f"{emulator.url}{UI}/release").status_code == 200
        assert next(lines) == "second"


def test_websocket_is_relayed_with_subprotocol(proxied: tuple[Emulator, int]) -> None:
    emulator, _ = proxied
    url = f"ws://127.0.0.1:{emulator.port}{UI}/ws?token=t"
    with connect(url, subprotocols=["vite-hmr"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "vite-hmr"
        assert json.loads(ws.recv(timeout=5)) == {"subprotocol": "vite-hmr", "path": f"{UI}/ws"}
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=5) == b"echo:\x00\x01"
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


def test_existing_dev_server_is_reused_and_left_running(
    proxied: tuple[Emulator, int], tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    _, ui_port = proxied
    app = make_ui_app(tmp_path, "exit 3")  # would fail if it were started
    second = emulator_factory(app, "--ui-port", str(ui_port))
    assert httpx.get(f"{second.url}{UI}/env").status_code == 200
    assert "reusing the UI dev server" in second.logs()
    second.stop()
    assert port_is_listening(ui_port)


def test_dev_server_stops_with_the_emulator(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    ui_port = free_port()
    emulator = emulator_factory(make_ui_app(tmp_path, FAKE_DEV), "--ui-port", str(ui_port))
    wait_until(lambda: port_is_listening(ui_port), what="the fake dev server")
    emulator.stop(signal.SIGTERM)
    wait_until(lambda: not port_is_listening(ui_port), timeout=10, what="the dev server to stop")


def test_dev_server_that_exits_gives_503_with_the_reason_and_the_api_serves(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(make_ui_app(tmp_path, "exit 3"), "--ui-port", str(free_port()))
    line = wait_until(
        lambda: next((x for x in emulator.logs().splitlines() if "dev server exited" in x), None),
        what="the dev server's exit to be reported",
    )
    assert line.startswith("llamaws: the UI dev server exited (code 3); ")
    assert "run fake-dev` in " in line and line.endswith("The API keeps serving.")
    response = httpx.get(f"{emulator.url}{UI}/")
    assert response.status_code == 503
    assert response.json() == {"detail": line.removeprefix("llamaws: ")}
    with pytest.raises(InvalidStatus) as denied:
        connect(f"ws://127.0.0.1:{emulator.port}{UI}/ws", open_timeout=5)
    assert denied.value.response.status_code == 503
    assert httpx.get(f"{emulator.url}/deployments/hello/workflows").status_code == 200


async def test_dev_server_not_listening_gives_502() -> None:
    from starlette.applications import Starlette

    proxy = UIProxy(f"http://127.0.0.1:{free_port()}")
    app = Starlette(routes=proxy_routes(UI, proxy))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(f"{UI}/")
    finally:
        await proxy.aclose()
    assert response.status_code == 502
    assert response.json() == {"detail": "Upstream server unavailable"}


async def test_upstream_timeout_gives_504(proxied: tuple[Emulator, int]) -> None:
    from starlette.applications import Starlette

    _, ui_port = proxied
    proxy = UIProxy(f"http://127.0.0.1:{ui_port}", timeout=0.3)
    app = Starlette(routes=proxy_routes(UI, proxy))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(f"{UI}/slow")
    finally:
        await proxy.aclose()
    assert response.status_code == 504


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_ui_packages_failing_to_install_leave_the_api_serving_and_the_ui_503(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app = make_ui_app(tmp_path, FAKE_DEV)
    package = json.loads((app / "ui" / "package.json").read_text())
    package["dependencies"] = {"not-there": "file:./not-there.tgz"}  # fails offline, at once
    (app / "ui" / "package.json").write_text(json.dumps(package))
    emulator = emulator_factory(app, "--install", "--ui-port", str(free_port()))
    line = next(x for x in emulator.logs().splitlines() if "the UI is not served" in x)
    assert line.startswith("llamaws: the UI is not served: installing UI dependencies failed")
    assert "npm install" in line and f"To see why: cd {app / 'ui'} && " in line
    assert line.endswith("The API keeps serving; --no-install skips installing its packages.")
    response = httpx.get(f"{emulator.url}{UI}/")
    assert response.status_code == 503
    assert response.json() == {"detail": line.removeprefix("llamaws: ")}
    assert httpx.get(f"{emulator.url}/deployments/hello/docs").status_code == 200
    assert httpx.get(f"{emulator.url}/deployments/hello/workflows").status_code == 200
