"""The last deploy's record: which version of the app runs, when and who deployed it.

One SSM ``String`` parameter per stack, ``/llamaws/<stack>/deploy`` (free, outside the
path the function reads its values from), rewritten by every deploy that changed
something: its parameter version is the deploy's number. ``llamaws status`` shows it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .target import AwsTarget

__all__ = [
    "DeployRecord",
    "app_commit",
    "code_sha256",
    "delete_record",
    "read_record",
    "record_name",
    "write_record",
]


@dataclass(frozen=True)
class DeployRecord:
    """One deploy, as recorded."""

    deployed_at: str
    deployed_by: str
    llamaws_version: str
    code_sha256: str
    """The bundle's SHA-256, base64 (Lambda's ``CodeSha256`` of the same zip)."""
    ui_build: str | None = None
    app_commit: str | None = None
    number: int | None = None
    """The parameter's version: 1 for the first deploy, then one more each time."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record_name(stack_name: str) -> str:
    return f"/llamaws/{stack_name}/deploy"


def code_sha256(zip_path: Path) -> str:
    """Lambda's ``CodeSha256`` of a zip: base64 of its SHA-256."""
    digest = hashlib.sha256()
    with zip_path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def app_commit(app_dir: Path) -> str | None:
    """``git``'s commit of the app's folder (``+dirty`` with uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(app_dir), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(app_dir), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_record(
    target: AwsTarget,
    stack_name: str,
    *,
    deployed_by: str,
    code: str,
    ui_build: str | None,
    commit: str | None,
) -> DeployRecord:
    """Record a deploy; the returned record carries its number."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        llamaws_version = version("llamaws")
    except PackageNotFoundError:
        llamaws_version = "unknown"
    record = DeployRecord(
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        deployed_by=deployed_by,
        llamaws_version=llamaws_version,
        code_sha256=code,
        ui_build=ui_build,
        app_commit=commit,
    )
    body = {k: v for k, v in record.to_json().items() if k != "number"}
    answer = target.client("ssm").put_parameter(
        Name=record_name(stack_name),
        Value=json.dumps(body, sort_keys=True),
        Type="String",
        Overwrite=True,
        Description="llamaws: the last deploy of this stack",
    )
    return DeployRecord(**body, number=int(answer.get("Version", 0)) or None)


def read_record(target: AwsTarget, stack_name: str) -> DeployRecord | None:
    """The last deploy's record, if any."""
    from botocore.exceptions import ClientError

    try:
        parameter = target.client("ssm").get_parameter(Name=record_name(stack_name))["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    try:
        body = json.loads(parameter["Value"])
        fields = {k: body.get(k) for k in DeployRecord.__dataclass_fields__ if k != "number"}
        return DeployRecord(**fields, number=int(parameter.get("Version", 0)) or None)
    except (ValueError, TypeError):
        return None


def delete_record(target: AwsTarget, stack_name: str) -> None:
    """Forget the record (the stack is gone)."""
    from botocore.exceptions import ClientError

    with contextlib.suppress(ClientError):
        target.client("ssm").delete_parameter(Name=record_name(stack_name))
