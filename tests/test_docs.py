"""The README and ``docs/`` point only at things inside the repository, and those exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .support import ROOT, parse_llamaws

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


def test_user_guide_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "](docs/guide.md)" in readme
    guide = (ROOT / "docs" / "guide.md").read_text()
    for page in ("configuration.md", "api.md", "waits.md", "lambda.md", "deploy.md",
                 "auth.md", "ci.md", "troubleshooting.md"):  # fmt: skip
        assert f"]({page}" in guide, f"the guide does not link {page}"


# -- every command and config snippet of the docs -------------------------------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(language: set[str]) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for lang, body in FENCE.findall(doc.read_text()):
            if lang in language:
                found.append((doc.name, body))
    return found


def _llamaws_commands() -> list[tuple[str, list[str]]]:
    """(doc, argv after ``llamaws``) of every ``llamaws`` line in a shell (or unlabelled)
    block."""
    import shlex

    commands = []
    for doc, body in _blocks({"bash", "sh", "shell", "console", ""}):
        for line in body.replace("\\\n", " ").splitlines():
            if "llamaws " not in line:
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                if "(" not in line:
                    raise
                continue  # a diagram's label, e.g. `llamaws serve APP (llamaws's own …)`
            if "llamaws" not in words:
                continue
            start = words.index("llamaws")
            if start and words[start - 1] not in ("$", "run", "cdk", "dev") and words[0] != "uv":
                continue
            # A synopsis: `[--since 10m]` is optional (shown, so parsed), `push|list` two
            # commands.
            args = [w.lstrip("[").rstrip("]") for w in words[start + 1 :]]
            choices = next((i for i, w in enumerate(args) if re.fullmatch(r"[\w-]+(\|[\w-]+)+", w)),
                           None)  # fmt: skip
            if choices is None:
                commands.append((doc, args))
                continue
            for choice in args[choices].split("|"):
                commands.append((doc, [*args[:choices], choice, *args[choices + 1 :]]))
    return commands


COMMANDS = _llamaws_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 30
    assert {args[0] for _, args in COMMANDS} >= {"serve", "init", "synth", "deploy", "tokens"}


@pytest.mark.parametrize(("doc", "args"), COMMANDS, ids=[f"{d}:{' '.join(a)}" for d, a in COMMANDS])
def test_every_llamaws_command_in_the_docs_parses(doc: str, args: list[str]) -> None:
    """The real CLI parses it: the command exists and takes those options and arguments."""
    parse_llamaws(args)


def test_every_toml_snippet_in_the_docs_loads() -> None:
    """Config snippets are valid TOML, and their tables valid for the loaders."""
    import tomllib

    from llamaws.adapter.config import DeploymentConfig
    from llamaws.infra.settings import Settings

    blocks = _blocks({"toml"})
    assert blocks
    for doc, body in blocks:
        data = tomllib.loads(body)
        tool = data.get("tool", {})
        if "llamaws" in tool:
            Settings.model_validate({**tool["llamaws"], "deployment": "docs"})
        for key in ("llamadeploy", "llamaagents"):
            if key in tool:
                DeploymentConfig.model_validate(tool[key])
        assert tool or data.get("project"), f"{doc}: a TOML snippet without a table we read"


def test_configuration_reference_lists_every_field_with_its_default() -> None:
    from pydantic import BaseModel

    from llamaws.adapter.config import DeploymentConfig, UIConfig
    from llamaws.infra.settings import Settings

    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, re.M))

    def check(model: type[BaseModel], skip: set[str]) -> None:
        for name, field in model.model_fields.items():
            if name in skip:
                continue
            assert name in rows, f"docs/configuration.md does not list {model.__name__}.{name}"
            default = field.get_default(call_default_factory=True)
            shown = rows[name].strip().strip("`")
            if default is None or field.is_required():
                continue  # "none", "(required)", or what a missing value means
            if isinstance(default, bool):
                expected = str(default).lower()
            elif isinstance(default, (tuple, list, dict)):
                expected = "[]" if isinstance(default, (tuple, list)) else "{}"
            else:
                expected = str(default)
            assert shown == expected, f"{name}: the docs say {shown!r}, the code {expected!r}"

    check(Settings, {"deployment"})
    check(DeploymentConfig, set())
    check(UIConfig, set())


def test_every_troubleshooting_message_is_in_the_code() -> None:
    """Each quoted message still exists: its fixed parts are in llamaws's source."""
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    source = "\n".join(
        path.read_text()
        for folder in ("adapter", "builder", "cli", "infra", "local")
        for path in (ROOT / folder).rglob("*.py")
    )
    messages = [
        first.strip()
        for first in re.findall(r"^\| (?:\d+ )?``?(.+?)``? (?:\(|from|with|\|)", text, re.M)
        if first.strip() not in ("message",)
    ]
    assert len(messages) > 30
    missing = []
    for message in messages:
        # Fixed parts between the placeholders; the code may split them over lines.
        parts = [p.strip(" .:,()'\"") for p in message.split("…")]
        if not all(part in source for part in parts if len(part) >= 6):
            missing.append(message)
    assert not missing, f"docs/troubleshooting.md quotes what the code no longer says: {missing}"
