"""The Lambda Runtime Interface Emulator (RIE): find it, run a container with it.

A *container* here is what Lambda runs per execution environment: the RIE
binary (the ``rapid`` init that Lambda images use) starting
``python -m awslambdaric <module.handler>``, the real runtime loop that polls
the Runtime API, calls the handler and posts its result. We invoke it over
HTTP at ``/2015-03-31/functions/function/invocations``.

The binary ships inside the ``aws-sam-cli`` wheel
(``samcli/local/rapid/aws-lambda-rie-<arch>``); :func:`ensure_rie` takes it from
``$LLAMAWS_RIE``, else from the cache
(``~/.cache/llamaws/rie/<version>/aws-lambda-rie-<arch>``), else downloads the
wheel with ``pip download --no-deps`` (PyPI) and extracts it into the cache.
``python -m llamaws.local.rie --ensure`` does that and prints the path (CI calls it).

How the RIE behaves (measured with aws-sam-cli 1.170.0's x86_64 binary):

- **One invocation at a time, and concurrency kills it.** A second invocation
  while one runs is not queued nor rejected cleanly: the RIE logs
  ``ReserveFailed: AlreadyReserved`` and panics (nil pointer dereference), the
  process exits and both callers see a dropped connection. :class:`RieContainer`
  therefore serialises invocations with a lock; concurrency comes from running
  several containers (as Lambda does).
- **``X-Amz-Invocation-Type: Event`` is ignored**: the call is synchronous and
  answers 200 with the handler's result after it ran (Lambda answers 202 at
  once). Asynchronous invocation is the caller's job (``local.lambda_mode``).
- **Init is lazy**: the runtime process starts on the first invocation (its
  import time is part of that first call, like a cold start), not when the
  RIE starts listening.
- **Errors are 200s**: an exception in the handler gives 200 with
  ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` and no
  ``X-Amz-Function-Error`` header; :class:`Invocation` recognises that shape.
- **Timeouts** (``AWS_LAMBDA_FUNCTION_TIMEOUT``, default 300 s) answer 200 with
  the plain text ``Task timed out after N.00 seconds``; the runtime is killed
  (SIGKILL) and the next invocation cold-starts a new one.
- **No payload limit is enforced**: a 7 MB event arrives truncated (the runtime
  fails with ``Runtime.UnmarshalError``), so callers must enforce Lambda's 6 MB
  limit themselves.
- **The Runtime API port is fixed** (127.0.0.1:9001) unless
  ``--runtime-api-address`` is given: a second RIE on the same machine panics
  with ``bind: address already in use``. Each container gets its own free port.
- The context object carries ``AWS_LAMBDA_FUNCTION_NAME`` (else
  ``test_function``) and a deadline from the function timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from llamaws.adapter.errors import LlamawsError

__all__ = [
    "INVOKE_PATH",
    "RIE_ENV",
    "SAM_CLI_VERSION",
    "Invocation",
    "RieContainer",
    "ensure_rie",
    "rie_arch",
    "rie_cache_path",
    "set_parent_death_signal",
]

SAM_CLI_VERSION = "1.170.0"
"""The ``aws-sam-cli`` wheel the RIE binary is taken from."""

RIE_ENV = "LLAMAWS_RIE"
"""An explicit path to the RIE binary (wins over the cache)."""

INVOKE_PATH = "/2015-03-31/functions/function/invocations"

_TIMEOUT_PREFIX = "Task timed out after"


def rie_arch(machine: str | None = None) -> str:
    """``x86_64`` or ``arm64``: the RIE build for this machine."""
    value = (machine or platform.machine()).lower()
    if value in ("aarch64", "arm64", "armv8l"):
        return "arm64"
    if value in ("x86_64", "amd64"):
        return "x86_64"
    raise LlamawsError(
        f"no Lambda Runtime Interface Emulator for machine type {value!r}",
        hint=f"Set {RIE_ENV} to an aws-lambda-rie binary built for it.",
    )


def rie_cache_path(version: str = SAM_CLI_VERSION, arch: str | None = None) -> Path:
    """Where the extracted binary is kept: ``~/.cache/llamaws/rie/<version>/``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llamaws" / "rie" / version / f"aws-lambda-rie-{arch or rie_arch()}"


def ensure_rie(*, download: bool = True) -> Path:
    """The RIE binary: ``$LLAMAWS_RIE``, else the cache, else downloaded into the cache."""
    explicit = os.environ.get(RIE_ENV)
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LlamawsError(
                f"{RIE_ENV}={explicit} is not an executable file",
                hint="Point it at aws-lambda-rie, or unset it to use the cached download.",
            )
        return path
    target = rie_cache_path()
    if target.is_file():
        return target
    if not download:
        raise LlamawsError(
            f"the Lambda Runtime Interface Emulator is not in {target}",
            hint="Run `python -m llamaws.local.rie --ensure` "
            "(downloads aws-sam-cli's wheel from PyPI).",
        )
    _download(target)
    return target


def _pip_command() -> list[str]:
    """A pip to run ``pip download`` with: this interpreter's, else one on PATH, else uvx."""
    if _has_module("pip"):
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    uv = shutil.which("uv")
    if uv:
        return [uv, "tool", "run", "pip"]
    raise LlamawsError(
        "cannot download the Lambda Runtime Interface Emulator: no pip found",
        hint=f"Install pip, or set {RIE_ENV} to an aws-lambda-rie binary.",
    )


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _download(target: Path) -> None:
    member = f"samcli/local/rapid/{target.name}"
    with tempfile.TemporaryDirectory(prefix="llamaws-rie-") as tmp:
        command = [
            *_pip_command(), "download", "--no-deps", "--only-binary", ":all:",
            "--disable-pip-version-check", "--dest", tmp, f"aws-sam-cli=={SAM_CLI_VERSION}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("aws_sam_cli-*.whl"))
        if done.returncode != 0 or not wheels:
            raise LlamawsError(
                f"could not download aws-sam-cli=={SAM_CLI_VERSION}: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                hint=f"Check access to PyPI, or set {RIE_ENV} to an aws-lambda-rie binary.",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        with (
            zipfile.ZipFile(wheels[0]) as wheel,
            wheel.open(member) as src,
            partial.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        partial.chmod(0o755)
        os.replace(partial, target)  # atomic: concurrent callers see all or nothing


@dataclass(frozen=True)
class Invocation:
    """The answer of one invocation, as the RIE gave it."""

    status: int
    body: bytes
    duration: float
    """Seconds from the request to the answer."""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def timed_out(self) -> bool:
        return self.text.startswith(_TIMEOUT_PREFIX)

    @property
    def payload(self) -> Any:
        """The handler's return value (JSON-decoded), or the error object."""
        return json.loads(self.body) if self.body else None

    @property
    def function_error(self) -> str | None:
        """``errorType`` of a handler exception, ``"Timeout"``, or ``None`` on success."""
        if self.status != 200:
            return f"HTTP {self.status}"
        if self.timed_out:
            return "Timeout"
        try:
            payload = self.payload
        except ValueError:
            return "InvalidResponse"
        if isinstance(payload, dict) and set(payload) >= {"errorMessage", "errorType"}:
            return str(payload["errorType"])
        return None

    def result(self) -> Any:
        """The handler's return value; :class:`LlamawsError` on a function error."""
        error = self.function_error
        if error is not None:
            raise LlamawsError(f"Lambda invocation failed ({error}): {self.text[:2000]}")
        return self.payload


@dataclass
class RieContainer:
    """One Lambda execution environment: the RIE plus ``awslambdaric`` running ``handler``.

    ``env`` is added to this process's environment (the runtime sees it, like a
    function's configuration); ``cwd`` is the app's folder, as in the bundle.
    Invocations are serialised (the RIE crashes on concurrent ones).
    """

    handler: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path(".")
    timeout: float = 300.0
    """The function timeout (``AWS_LAMBDA_FUNCTION_TIMEOUT``), whole seconds."""
    function_name: str = "llamaws-local"
    memory_mb: int = 1024
    python: str = sys.executable
    command: Sequence[str] | None = None
    """The runtime's command (default ``<python> -m awslambdaric <handler>``), e.g. an
    ``AWS_LAMBDA_EXEC_WRAPPER`` with the arguments Lambda gives it."""
    log: IO[bytes] | int | None = None
    """Where the RIE and the handler write (a file, ``subprocess.DEVNULL``, or inherit)."""
    host: str = "127.0.0.1"
    port: int = 0
    """0: a free port is picked at :meth:`start`."""
    die_with_parent: bool = False
    """Linux: the RIE gets SIGTERM when the *thread* that started it ends (so also when
    this process dies, even by SIGKILL). Start such containers from a long-lived thread."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    invocations: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{INVOKE_PATH}"

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def start(self, *, timeout: float = 10.0) -> RieContainer:
        """Start the RIE and wait until it listens (the runtime starts on first invoke)."""
        if self.port == 0:
            self.port = _free_port(self.host)
        env = {
            **os.environ,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(max(1, int(self.timeout))),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
        command = [
            str(ensure_rie()),
            "--runtime-interface-emulator-address", f"{self.host}:{self.port}",
            "--runtime-api-address", f"{self.host}:{_free_port(self.host)}",
            *(self.command or [self.python, "-m", "awslambdaric", self.handler]),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log is not None else None,
            start_new_session=True,  # stop() ends the runtime child with the RIE
            preexec_fn=set_parent_death_signal if self.die_with_parent else None,
        )
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout + 30.0, connect=5.0))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise LlamawsError(
                    f"the Lambda runtime emulator exited at start (code {self.process.returncode})"
                )
            if _listening(self.host, self.port):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise LlamawsError(f"the Lambda runtime emulator did not listen in {timeout}s")
            time.sleep(0.02)

    def invoke(self, event: Mapping[str, Any] | bytes) -> Invocation:
        """Invoke synchronously (waits for a running invocation to end first)."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        with self._lock:
            if self._client is None or self.process is None:
                raise LlamawsError("the Lambda container is not started")
            if self.process.poll() is not None:
                raise LlamawsError(
                    f"the Lambda runtime emulator exited (code {self.process.returncode})"
                )
            started = time.monotonic()
            try:
                response = self._client.post(
                    self.url, content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError as exc:  # the RIE died (or was stopped) meanwhile
                raise LlamawsError(f"the Lambda runtime emulator did not answer: {exc!r}") from exc
            self.invocations += 1
            return Invocation(response.status_code, response.content, time.monotonic() - started)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the RIE (it kills its runtime), then anything left in its session."""
        process, self.process = self.process, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the session this container started

    def __enter__(self) -> RieContainer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def set_parent_death_signal() -> None:
    """In the child: ask Linux for SIGTERM when the parent (thread) ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m llamaws.local.rie --ensure``: make sure the binary is there, print its path."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m llamaws.local.rie", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ensure", action="store_true", help="download it when missing")
    args = parser.parse_args(argv)
    try:
        path = ensure_rie(download=args.ensure)
    except LlamawsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
