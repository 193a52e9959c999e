"""What can stop a deploy before or while it talks to AWS, each with what to do."""

from __future__ import annotations

from llamaws.adapter.errors import LlamawsError

__all__ = [
    "CdkFailed",
    "CredentialsMissing",
    "NodeMissing",
    "NotBootstrapped",
    "StackMissing",
    "StackNotDeployable",
]


class NodeMissing(LlamawsError):
    """Node.js (or npm, to install the CDK CLI) is not on PATH."""


class CredentialsMissing(LlamawsError):
    """No AWS credentials (or no region) were found."""


class NotBootstrapped(LlamawsError):
    """The account and region have no CDK bootstrap stack."""


class StackNotDeployable(LlamawsError):
    """The stack is in a state CloudFormation cannot update (failed, or busy)."""


class StackMissing(LlamawsError):
    """The deployment's stack does not exist (not deployed, or destroyed)."""

    status_code = 404


class CdkFailed(LlamawsError):
    """The CDK CLI exited with an error; ``tail`` holds its last lines."""

    def __init__(self, message: str, *, hint: str | None = None, tail: tuple[str, ...] = ()):
        super().__init__(message, hint=hint)
        self.tail = tail
