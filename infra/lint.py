"""cfn-lint over a synthesized template (offline, the Python API).

CDK noise that cfn-lint reports on every CDK app is ignored here, each with its
reason; a finding that belongs to one resource is acknowledged next to that
resource instead (``cfn-lint`` metadata, see :func:`ignore_on`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CDK_NOISE", "LintFinding", "ignore_on", "lint_template"]

CDK_NOISE = {
    "W3005": "CDK writes DependsOn next to a reference that already orders the two "
    "resources (e.g. a function and its role's default policy).",
}
"""cfn-lint rules ignored for every template, with the reason."""


@dataclass(frozen=True)
class LintFinding:
    """One cfn-lint match."""

    rule: str
    level: str
    """``error``, ``warning`` or ``informational``."""
    message: str
    path: str

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def __str__(self) -> str:
        return f"{self.rule} {self.message} ({self.path})"


def ignore_on(resource: Any, rule: str, reason: str) -> None:
    """Acknowledge cfn-lint's ``rule`` on one CFN resource (``reason`` kept beside it)."""
    if not reason.strip():
        raise ValueError(f"ignoring {rule} needs a reason")
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": [rule]}})
    resource.add_metadata("llamaws:cfn-lint-reasons", {rule: reason})


def lint_template(template: Path, regions: tuple[str, ...] = ("us-east-1",)) -> list[LintFinding]:
    """cfn-lint's findings for ``template``, CDK noise left out."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(
        template.read_text(encoding="utf-8"),
        config=ManualArgs(regions=list(regions), ignore_checks=sorted(CDK_NOISE)),
    )
    findings = []
    for match in matches:
        rule = match.rule.id
        level = {"E": "error", "W": "warning", "I": "informational"}.get(rule[:1], "error")
        where = "/".join(str(part) for part in getattr(match, "path", ()) or ())
        findings.append(LintFinding(rule, level, match.message, where or str(match.linenumber)))
    return sorted(findings, key=lambda f: (f.rule, f.path))
