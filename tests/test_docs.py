"""The README and ``docs/`` point only at things inside the repository, and those exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .support import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_LEVEL = ("adapter/", "builder/", "cli/", "infra/", "local/", "tests/", "bench/",
             "docs/", "examples/", ".ci/")  # fmt: skip
# The design notes and measurements the team keeps outside the repository.
OUTSIDE = re.compile(r"(?<![\w.])(?:/work/|shared/|DESIGN\.md|REFERENCE\.md|STYLE\.md)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_doc_mentions_no_file_outside_the_repo(doc: Path) -> None:
    text = doc.read_text()
    assert not OUTSIDE.findall(text), f"{doc.name} points outside the repository"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_doc_links_and_repo_paths_exist(doc: Path) -> None:
    text = doc.read_text()
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in t]
    paths = [
        token.rstrip("/")
        for token in re.findall(r"`([^`\s]+)`", text)
        if token.startswith(TOP_LEVEL) and not re.search(r"[<>*{}…]|\.llamaws", token)
    ]
    missing = [t for t in targets if not (doc.parent / t).exists()]
    missing += [p for p in paths if not (ROOT / p.split(":")[0]).exists()]
    assert not missing, f"{doc.name} names what the repository does not have: {missing}"


def test_architecture_is_linked_from_the_readme() -> None:
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text()
