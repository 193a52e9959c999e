"""cdk-nag (``AwsSolutions``): acknowledging a finding next to its resource, and the report.

Every acknowledgement sits where the resource is built, with the reason it is
acceptable; :func:`nag_findings` lists what is left (unacknowledged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from constructs import IConstruct

__all__ = [
    "Acknowledgement",
    "NagFinding",
    "acknowledge",
    "acknowledgements",
    "acknowledgements_in_assembly",
    "nag_findings",
]


@dataclass(frozen=True)
class NagFinding:
    """One unacknowledged ``AwsSolutions`` finding."""

    rule: str
    """``AwsSolutions-IAM5[Resource::*]`` and the like."""
    description: str
    paths: tuple[str, ...]
    """Construct paths of the resources it concerns."""

    def __str__(self) -> str:
        return f"{self.rule}: {self.description} ({', '.join(self.paths)})"


@dataclass(frozen=True)
class Acknowledgement:
    """A finding acknowledged on a construct, with its reason."""

    path: str
    rule: str
    reason: str


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge the cdk-nag finding ``rule`` on ``scope``, saying why it is acceptable."""
    from aws_cdk import Acknowledgment, Validations

    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def nag_findings(scope: IConstruct) -> list[NagFinding]:
    """The ``AwsSolutions`` findings in ``scope`` that nobody acknowledged."""
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(scope)
    findings: list[NagFinding] = []
    for violation in report.violations:
        paths = tuple(
            sorted(
                resource.construct_path or resource.resource_logical_id or "?"
                for resource in violation.violating_resources
            )
        )
        findings.append(NagFinding(violation.rule_name, violation.description.strip(), paths))
    return sorted(findings, key=lambda f: (f.rule, f.paths))


def acknowledgements(scope: IConstruct) -> list[Acknowledgement]:
    """Every acknowledged cdk-nag rule in ``scope`` (CDK's own acknowledgements left out)."""
    found: list[Acknowledgement] = []
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != "aws:cdk:acknowledged-rules" or not isinstance(entry.data, dict):
                continue
            for rule, reason in entry.data.items():
                name = str(rule).removeprefix("Annotation::")
                if name.startswith("AwsSolutions-"):
                    found.append(Acknowledgement(construct.node.path, name, str(reason)))
    return sorted(set(found), key=lambda a: (a.path, a.rule))


def acknowledgements_in_assembly(metadata_file: Path) -> list[Acknowledgement]:
    """The same, read from a synthesized stack's ``<stack>.metadata.json`` (no jsii calls)."""
    data = json.loads(metadata_file.read_text(encoding="utf-8"))
    found: list[Acknowledgement] = []
    for path, entries in data.items():
        for entry in entries:
            if entry.get("type") != "aws:cdk:acknowledged-rules":
                continue
            for rule, reason in (entry.get("data") or {}).items():
                name = str(rule).removeprefix("Annotation::")
                if name.startswith("AwsSolutions-"):
                    found.append(Acknowledgement(path.lstrip("/"), name, str(reason)))
    return sorted(set(found), key=lambda a: (a.path, a.rule))
