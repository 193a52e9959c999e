"""Config resolution (adapter/config.py): every rule and every error message.

The rules mirror ``llamactl serve`` 0.10.4 / ``llama-agents-core`` 0.10.2
(``read_deployment_config``) and llama-agents-appserver 0.12.2
(``parse_environment_variables``, ``validate_required_env_vars``). The last tests
compare with the references themselves: ``llama-agents-core`` (a dev dependency) for
the resolution, and ``llamactl`` 0.10.4 (installed into its own venv under
``.llamaws/reference/``) for the LlamaCloud settings it injects.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.config import (
    Deployment,
    llama_cloud_environment,
    resolve_deployment,
    resolve_environment,
)
from llamaws.adapter.errors import ConfigError

WORKFLOWS = '[workflows]\necho = "app:echo"\n'
UI_DIR = '[ui]\ndirectory = "ui"\n'
TOOL_WORKFLOWS = '[tool.llamadeploy.workflows]\necho = "app:echo"\n'


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path → text, dedented) under ``root``; return ``root``."""
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def pyproject(section: str = "llamadeploy", body: str = "", project: str = "app") -> str:
    """A pyproject.toml with ``[project] name = project`` and a ``[tool.<section>]``."""
    head = f'[project]\nname = "{project}"\nversion = "0.1.0"\n\n' if project else ""
    return f"{head}[tool.{section}]\n{body}"


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolve_deployment(path)
    return caught.value


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An empty app directory (not inside a git repository)."""
    directory = tmp_path / "app"
    directory.mkdir()
    return directory


# -- which file defines the deployment ---------------------------------------------------


def test_llama_agents_toml_wins_over_llama_deploy_toml(app: Path) -> None:
    write(app, {
        "llama_agents.toml": f'name = "agents"\n{WORKFLOWS}',
        "llama_deploy.toml": 'name = "deploy"\n[workflows]\nother = "other:wf"\n',
        "pyproject.toml": pyproject(body='name = "pyproject"\n'),
    })
    deployment = resolve_deployment(app)
    assert deployment.name == "agents"
    assert deployment.config.workflows == {"echo": "app:echo"}
    assert deployment.config_file == (app / "llama_agents.toml").resolve()


def test_llama_deploy_toml_wins_over_pyproject(app: Path) -> None:
    write(app, {
        "llama_deploy.toml": f'name = "deploy"\n{WORKFLOWS}',
        "pyproject.toml": pyproject("llamaagents", 'name = "pyproject"\n'),
    })
    deployment = resolve_deployment(app)
    assert deployment.name == "deploy"
    assert deployment.config_file == (app / "llama_deploy.toml").resolve()


def test_toml_file_without_workflows_does_not_fall_back_to_pyproject(app: Path) -> None:
    write(app, {
        "llama_deploy.toml": 'name = "deploy"\n',
        "pyproject.toml": pyproject(body=f'name = "pyproject"\n{TOOL_WORKFLOWS}'),
    })
    error = config_error(app)
    assert error.message == f"{(app / 'llama_deploy.toml').resolve()}: no workflows configured"


def test_tool_llamaagents_wins_over_tool_llamadeploy(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject("llamaagents", 'name = "agents"\n[tool.llamaagents.workflows]\n'
                                    'echo = "app:echo"\n')
        + '\n[tool.llamadeploy]\nname = "deploy"\n[tool.llamadeploy.workflows]\nold = "old:wf"\n',
    })
    deployment = resolve_deployment(app)
    assert deployment.name == "agents"
    assert deployment.config.workflows == {"echo": "app:echo"}
    assert deployment.config_file == (app / "pyproject.toml").resolve()


def test_tool_llamadeploy_is_read_without_tool_llamaagents(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='name = "deploy"\n[tool.llamadeploy.workflows]\n'
                                    'echo = "app:echo"\n'),
    })
    deployment = resolve_deployment(app)
    assert (deployment.name, deployment.config.workflows) == ("deploy", {"echo": "app:echo"})


@pytest.mark.parametrize("file_name", ["pyproject.toml", "llama_deploy.toml", "llama_agents.toml"])
def test_config_file_given_as_path_resolves_its_directory(app: Path, file_name: str) -> None:
    write(app, {
        "llama_agents.toml": f'name = "agents"\n{WORKFLOWS}',
        "llama_deploy.toml": f'name = "deploy"\n{WORKFLOWS}',
        "pyproject.toml": pyproject(),
    })
    deployment = resolve_deployment(app / file_name)
    # The file names the directory; the precedence inside it is unchanged.
    assert deployment.name == "agents"
    assert deployment.config_dir == app.resolve()


def test_relative_path_is_resolved(app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(app, {"llama_deploy.toml": f'name = "deploy"\n{WORKFLOWS}'})
    monkeypatch.chdir(app.parent)
    deployment = resolve_deployment(Path("app"))
    assert deployment.config_dir == app.resolve()
    assert deployment.base_path == "/deployments/deploy"


# -- the deployment name ------------------------------------------------------------------


def test_missing_name_becomes_project_name_verbatim(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='[tool.llamadeploy.workflows]\necho = "app:echo"\n',
                                    project="My_App.v2"),
    })
    # Not normalised (PEP 503 would give "my-app-v2").
    assert resolve_deployment(app).name == "My_App.v2"


def test_explicit_name_wins_over_project_name(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='name = "explicit"\n[tool.llamadeploy.workflows]\n'
                                    'echo = "app:echo"\n', project="project-name"),
    })
    assert resolve_deployment(app).name == "explicit"


def test_name_defaults_to_default_without_project_name(app: Path) -> None:
    write(app, {"pyproject.toml": pyproject(body=TOOL_WORKFLOWS, project="")})
    deployment = resolve_deployment(app)
    assert deployment.name == "default"
    assert deployment.base_path == "/deployments/default"


def test_name_defaults_to_default_in_llama_deploy_toml(app: Path) -> None:
    # project.name only applies to the pyproject sections.
    write(app, {"llama_deploy.toml": WORKFLOWS, "pyproject.toml": pyproject(project="proj")})
    assert resolve_deployment(app).name == "default"


def test_project_name_applies_when_pyproject_has_no_tool_section(app: Path) -> None:
    # The reference fills in project.name even without [tool.llamadeploy]; it then wins
    # over the name of the YAML file that supplies the workflows.
    write(app, {
        "pyproject.toml": '[project]\nname = "proj"\nversion = "0.1.0"\n',
        "llama_deploy.yaml": "name: from-yaml\nworkflows:\n  echo: app:echo\n",
    })
    assert resolve_deployment(app).name == "proj"


# -- YAML ---------------------------------------------------------------------------------


def test_yaml_is_merged_when_toml_names_no_workflows(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='name = "toml"\nrequired_env_vars = ["A"]\n'
                                    '[tool.llamadeploy.env]\nX = "toml"\nY = "toml"\n'),
        "llama_deploy.yaml": """
            name: yaml
            workflows:
              echo: app:echo
            env:
              Y: yaml
            env_files: [.env]
            required_env_vars: [B]
        """,
    })
    deployment = resolve_deployment(app)
    config = deployment.config
    assert config.name == "toml"  # a non-default TOML name wins
    assert config.workflows == {"echo": "app:echo"}
    assert config.env == {"X": "toml", "Y": "yaml"}
    assert config.env_files == [".env"]
    assert config.required_env_vars == ["A", "B"]
    assert deployment.config_file == (app / "llama_deploy.yaml").resolve()


def test_yaml_name_used_when_toml_name_is_default(app: Path) -> None:
    write(app, {
        "llama_deploy.toml": "llama_cloud = false\n",
        "llama_agents.yaml": "name: from-yaml\napp: server:app\n",
    })
    deployment = resolve_deployment(app)
    assert (deployment.name, deployment.config.app) == ("from-yaml", "server:app")


def test_yaml_ignored_when_toml_names_workflows(app: Path) -> None:
    write(app, {
        "llama_deploy.toml": f'name = "toml"\n{WORKFLOWS}',
        "llama_deploy.yaml": "name: yaml\nworkflows:\n  other: other:wf\n",
    })
    deployment = resolve_deployment(app)
    assert deployment.config.workflows == {"echo": "app:echo"}
    assert deployment.name == "toml"


def test_llama_agents_yaml_wins_over_llama_deploy_yaml(app: Path) -> None:
    write(app, {
        "llama_agents.yaml": "name: agents\nworkflows:\n  echo: app:echo\n",
        "llama_deploy.yaml": "name: deploy\nworkflows:\n  other: other:wf\n",
    })
    deployment = resolve_deployment(app)
    assert (deployment.name, deployment.config.workflows) == ("agents", {"echo": "app:echo"})


def test_yaml_ui_merges_with_toml_ui(app: Path) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='[tool.llamadeploy.ui]\ndirectory = "ui"\n'
                                    'serve_command = "start"\n'),
        "llama_deploy.yaml": """
            workflows: {echo: "app:echo"}
            ui: {directory: other, serve_command: serve, build_command: compile}
        """,
    })
    ui = resolve_deployment(app).config.ui
    assert ui is not None
    # TOML values that differ from the defaults win; the rest come from the YAML.
    assert (ui.directory, ui.serve_command, ui.build_command) == ("ui", "start", "compile")


def test_legacy_yaml_services_become_workflows(app: Path) -> None:
    write(app, {
        "llama_deploy.yaml": """
            name: legacy
            services:
              echo:
                name: Echo
                source: {type: local, location: src}
                import_path: src/app.flows:echo
                env: {A: "1"}
                env_files: [.env, .env.echo]
              chat:
                import_path: chat:workflow
                env: {B: "2"}
                env_files: [.env]
              nothing:
                env: {C: "3"}
            ui:
              name: UI
              source: {type: local, location: ui}
        """,
    })
    config = resolve_deployment(app).config
    assert config.name == "legacy"
    # The file-path part of an import path is dropped: src/app.flows -> app.flows.
    assert config.workflows == {"echo": "app.flows:echo", "chat": "chat:workflow"}
    assert config.env == {"A": "1", "B": "2", "C": "3"}
    assert sorted(config.env_files) == [".env", ".env.echo"]
    assert config.ui is not None and config.ui.directory == "ui"


def test_legacy_yaml_default_service_adds_default_workflow(app: Path) -> None:
    write(app, {
        "llama_deploy.yaml": """
            name: legacy
            default_service: echo
            services:
              echo: {import_path: "app:echo"}
        """,
    })
    assert resolve_deployment(app).config.workflows == {"echo": "app:echo", "default": "app:echo"}


def test_legacy_yaml_accepts_dashed_aliases(app: Path) -> None:
    write(app, {
        "llama_deploy.yaml": """
            name: legacy
            default-service: echo
            services:
              echo: {import-path: "app:echo", env-files: [.env.a]}
              other: {path: "pkg/other:wf"}
            ui:
              source: {name: web}
        """,
    })
    config = resolve_deployment(app).config
    assert config.workflows == {"echo": "app:echo", "other": "other:wf", "default": "app:echo"}
    assert config.env_files == [".env.a"]
    assert config.ui is not None and config.ui.directory == "web"


def test_legacy_yaml_unknown_default_service_is_an_error(app: Path) -> None:
    write(app, {
        "llama_deploy.yaml": """
            name: legacy
            default_service: missing
            services:
              echo: {import_path: "app:echo"}
        """,
    })
    error = config_error(app)
    assert error.message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: field 'default_service' names 'missing', "
        "which is not a service with an import_path"
    )


def test_legacy_yaml_services_must_be_a_mapping(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "name: legacy\nservices: [echo]\n"})
    error = config_error(app)
    assert error.message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: field 'services' must be a mapping"
    )


def test_legacy_yaml_service_must_be_a_mapping(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "name: legacy\nservices:\n  echo: app:echo\n"})
    error = config_error(app)
    assert error.message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: field 'services.echo' must be a mapping"
    )


@pytest.mark.parametrize(
    ("service", "field", "kind"),
    [
        ("{import_path: 'app:echo', env_files: .env}", "services.echo.env_files", "a list"),
        ("{import_path: 'app:echo', env-files: .env}", "services.echo.env_files", "a list"),
        ("{import_path: 'app:echo', env: A=1}", "services.echo.env", "a mapping"),
    ],
    ids=["env_files-string", "env-files-string", "env-string"],
)
def test_legacy_yaml_service_field_of_the_wrong_type_names_the_field(
    app: Path, service: str, field: str, kind: str
) -> None:
    write(app, {"llama_deploy.yaml": f"name: legacy\nservices:\n  echo: {service}\n"})
    assert config_error(app).message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: field '{field}' must be {kind}"
    )


def test_legacy_yaml_ui_source_must_be_a_mapping(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "name: x\nservices: {echo: {import_path: 'a:b'}}\n"
                                     "ui: {source: web}\n"})
    assert config_error(app).message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: field 'ui.source' must be a mapping"
    )


@pytest.mark.parametrize("file_name", ["deploy.yml", "custom.yaml"])
def test_yaml_file_given_as_path_is_used(app: Path, file_name: str) -> None:
    write(app, {
        "pyproject.toml": pyproject(body='name = "toml"\n'),
        "llama_deploy.yaml": "workflows:\n  wrong: wrong:wf\n",
        file_name: "workflows:\n  echo: app:echo\n",
    })
    deployment = resolve_deployment(app / file_name)
    assert deployment.config.workflows == {"echo": "app:echo"}
    assert deployment.name == "toml"
    assert deployment.config_file == (app / file_name).resolve()


def test_empty_yaml_file_adds_nothing(app: Path) -> None:
    write(app, {"pyproject.toml": pyproject(), "llama_deploy.yaml": ""})
    error = config_error(app)
    assert error.message == f"{(app / 'llama_deploy.yaml').resolve()}: no workflows configured"


# -- the UI and package.json --------------------------------------------------------------


def ui_app(
    app: Path, ui: str = 'directory = "ui"\n', package: dict[str, Any] | None = None
) -> Path:
    write(app, {"llama_deploy.toml": f'name = "web"\n{WORKFLOWS}[ui]\n{ui}'})
    if package is not None:
        write(app, {"ui/package.json": json.dumps(package)})
    return app


def test_ui_defaults(app: Path) -> None:
    deployment = resolve_deployment(ui_app(app))
    ui = deployment.config.ui
    assert ui is not None
    assert ui.directory == "ui"
    assert ui.build_output_dir is None
    assert (ui.package_manager, ui.build_command, ui.serve_command) == ("npm", "build", "dev")
    assert ui.proxy_port == 4502
    assert deployment.ui_dir == app.resolve() / "ui"
    assert deployment.ui_build_dir == app.resolve() / "ui" / "dist"


def test_no_ui_section_means_no_ui(app: Path) -> None:
    write(app, {"llama_deploy.toml": WORKFLOWS})
    deployment = resolve_deployment(app)
    assert (deployment.config.ui, deployment.ui_dir, deployment.ui_build_dir) == (None, None, None)


def test_toml_build_output_dir_is_relative_to_config_dir(app: Path) -> None:
    deployment = resolve_deployment(ui_app(app, 'directory = "ui"\nbuild_output_dir = "out"\n'))
    assert deployment.ui_build_dir == app.resolve() / "out"


def test_package_json_llamaagents_key_overrides_ui_fields(app: Path) -> None:
    ui_app(app, 'directory = "ui"\nbuild_command = "toml-build"\nserve_command = "toml-dev"\n', {
        "name": "ui",
        "llamaagents": {"serve_command": "start", "package_manager": "yarn", "proxy_port": 5000},
    })
    ui = resolve_deployment(app).config.ui
    assert ui is not None
    assert ui.serve_command == "start"
    assert ui.package_manager == "yarn"
    assert ui.proxy_port == 5000
    # A field package.json leaves at its default keeps the TOML value.
    assert ui.build_command == "toml-build"


def test_package_json_llamadeploy_key_is_read_without_llamaagents_key(app: Path) -> None:
    ui_app(app, package={"llamadeploy": {"serve_command": "start"}})
    ui = resolve_deployment(app).config.ui
    assert ui is not None and ui.serve_command == "start"


def test_package_json_llamaagents_key_wins_over_llamadeploy_key(app: Path) -> None:
    ui_app(app, package={
        "llamaagents": {"serve_command": "agents"},
        "llamadeploy": {"serve_command": "deploy", "build_command": "deploy"},
    })
    ui = resolve_deployment(app).config.ui
    assert ui is not None
    assert (ui.serve_command, ui.build_command) == ("agents", "build")


def test_package_manager_field_gives_the_package_manager_name(app: Path) -> None:
    ui_app(app, package={"packageManager": "pnpm@9.12.0+sha512.abc"})
    ui = resolve_deployment(app).config.ui
    assert ui is not None and ui.package_manager == "pnpm"


def test_package_json_package_manager_key_wins_over_package_manager_field(app: Path) -> None:
    ui_app(app, package={"packageManager": "pnpm@9", "llamadeploy": {"package_manager": "yarn"}})
    ui = resolve_deployment(app).config.ui
    assert ui is not None and ui.package_manager == "yarn"


def test_package_json_build_output_dir_is_relative_to_ui_dir(app: Path) -> None:
    ui_app(app, package={"llamadeploy": {"build_output_dir": "build/static"}})
    deployment = resolve_deployment(app)
    assert deployment.config.ui is not None
    assert deployment.config.ui.build_output_dir == str(Path("ui") / "build" / "static")
    assert deployment.ui_build_dir == app.resolve() / "ui" / "build" / "static"


def test_package_json_keeps_the_toml_ui_directory(app: Path) -> None:
    # Deliberate: the reference lets package.json's own "directory" move the UI.
    ui_app(app, package={"llamadeploy": {"directory": "elsewhere", "serve_command": "start"}})
    ui = resolve_deployment(app).config.ui
    assert ui is not None and (ui.directory, ui.serve_command) == ("ui", "start")


def test_package_json_without_section_changes_nothing(app: Path) -> None:
    ui_app(app, 'directory = "ui"\nserve_command = "start"\n', {"name": "ui", "version": "1.0.0"})
    ui = resolve_deployment(app).config.ui
    assert ui is not None
    assert (ui.serve_command, ui.package_manager) == ("start", "npm")


# -- the source root ----------------------------------------------------------------------


def test_ui_directory_outside_the_config_dir_is_an_error_outside_git(app: Path) -> None:
    (app.parent / "web").mkdir()
    ui_app(app, 'directory = "../web"\n')
    error = config_error(app)
    assert error.message == (
        f"{(app / 'llama_deploy.toml').resolve()}: field 'ui.directory' points outside "
        f"the source root {app.resolve()}"
    )


def test_ui_directory_may_leave_the_config_dir_inside_the_git_repo(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    app = tmp_path / "apps" / "app"
    app.mkdir(parents=True)
    ui_app(app, 'directory = "../../web"\n')
    deployment = resolve_deployment(app)
    assert deployment.source_root == tmp_path.resolve()
    assert deployment.ui_dir is not None
    assert deployment.ui_dir.resolve() == tmp_path.resolve() / "web"


def test_ui_directory_outside_the_git_repo_is_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    app = repo / "app"
    app.mkdir()
    ui_app(app, 'directory = "../../web"\n')
    assert "field 'ui.directory' points outside the source root" in config_error(app).message


def test_git_file_marks_the_source_root(tmp_path: Path) -> None:
    # Worktrees and submodules have a .git file, not a directory.
    (tmp_path / ".git").write_text("gitdir: /elsewhere\n", encoding="utf-8")
    app = tmp_path / "app"
    app.mkdir()
    write(app, {"llama_deploy.toml": WORKFLOWS})
    assert resolve_deployment(app).source_root == tmp_path.resolve()


def test_source_root_is_the_config_dir_outside_git(app: Path) -> None:
    write(app, {"llama_deploy.toml": WORKFLOWS})
    assert resolve_deployment(app).source_root == app.resolve()


def test_ui_directory_symlink_leaving_the_source_root_is_an_error(app: Path) -> None:
    (app.parent / "outside").mkdir()
    (app / "ui").symlink_to(app.parent / "outside")
    ui_app(app)
    assert "field 'ui.directory' points outside" in config_error(app).message


def test_build_output_dir_outside_the_source_root_is_an_error(app: Path) -> None:
    ui_app(app, 'directory = "ui"\nbuild_output_dir = "../dist"\n')
    assert "field 'ui.build_output_dir' points outside the source root" in config_error(app).message


def test_package_json_build_output_dir_outside_the_source_root_is_an_error(app: Path) -> None:
    ui_app(app, package={"llamadeploy": {"build_output_dir": "../../dist"}})
    assert "field 'ui.build_output_dir' points outside the source root" in config_error(app).message


# -- app or workflows ---------------------------------------------------------------------


def test_app_alone_is_accepted(app: Path) -> None:
    write(app, {"llama_deploy.toml": 'app = "server:app"\n'})
    config = resolve_deployment(app).config
    assert (config.app, config.workflows) == ("server:app", {})


def test_app_and_workflows_together_is_an_error(app: Path) -> None:
    write(app, {"llama_deploy.toml": f'app = "server:app"\n{WORKFLOWS}'})
    error = config_error(app)
    assert error.message == (
        f"{(app / 'llama_deploy.toml').resolve()}: both 'app' and 'workflows' are set"
    )


def test_neither_app_nor_workflows_is_an_error(app: Path) -> None:
    write(app, {"pyproject.toml": pyproject(body='name = "empty"\n')})
    error = config_error(app)
    assert error.message == f"{(app / 'pyproject.toml').resolve()}: no workflows configured"
    assert error.hint is not None and "module:attr" in error.hint


def test_pyproject_without_tool_section_has_no_workflows(app: Path) -> None:
    write(app, {"pyproject.toml": '[project]\nname = "app"\n'})
    error = config_error(app)
    assert error.message == f"{(app / 'pyproject.toml').resolve()}: no workflows configured"


def test_python_paths_put_src_first(app: Path) -> None:
    write(app, {"llama_deploy.toml": WORKFLOWS})
    assert resolve_deployment(app).python_paths == [app.resolve()]
    (app / "src").mkdir()
    assert resolve_deployment(app).python_paths == [app.resolve() / "src", app.resolve()]


# -- the environment ----------------------------------------------------------------------


def env_app(app: Path, toml: str, files: dict[str, str] | None = None) -> Deployment:
    write(app, {"llama_deploy.toml": f"{toml}\n{WORKFLOWS}", **(files or {})})
    return resolve_deployment(app)


def test_env_then_each_env_file_in_order_later_overwrites(app: Path) -> None:
    deployment = env_app(app, 'env_files = [".env", "config/.env.local"]\n'
                              '[env]\nA = "env"\nB = "env"\nC = "env"\n', {
        ".env": "B=first\nC=first\nD=first\n",
        "config/.env.local": "C=second\nE=second\n",
    })
    assert resolve_environment(deployment, {}) == {
        "A": "env", "B": "first", "C": "second", "D": "first", "E": "second",
    }


def test_config_values_overwrite_the_process_environment(app: Path) -> None:
    deployment = env_app(app, '[env]\nA = "config"\n')
    assert resolve_environment(deployment, {"A": "process", "B": "process"}) == {"A": "config"}


def test_empty_values_are_skipped(app: Path) -> None:
    deployment = env_app(app, 'env_files = [".env"]\n[env]\nA = ""\nB = "kept"\n',
                         {".env": "C=\nD=''\nE=value\n"})
    assert resolve_environment(deployment, {}) == {"B": "kept", "E": "value"}


def test_empty_value_in_a_later_file_drops_the_earlier_value(app: Path) -> None:
    # As the reference: the empty value overwrites, then empty values are not set.
    deployment = env_app(app, 'env_files = [".env"]\n[env]\nA = "from-env"\n', {".env": "A=\n"})
    assert resolve_environment(deployment, {}) == {}


def test_env_file_keys_without_values_are_ignored(app: Path) -> None:
    deployment = env_app(app, 'env_files = [".env"]\n', {".env": "BARE\nSET=1\n"})
    assert resolve_environment(deployment, {}) == {"SET": "1"}


def test_env_file_interpolation_follows_dotenv(app: Path) -> None:
    deployment = env_app(app, 'env_files = [".env"]\n', {".env": "HOST=h\nURL=http://${HOST}/\n"})
    assert resolve_environment(deployment, {})["URL"] == "http://h/"


def test_env_files_are_relative_to_the_config_dir(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = env_app(app, 'env_files = [".env"]\n', {".env": "A=1\n"})
    monkeypatch.chdir(app.parent)
    assert resolve_environment(deployment, {}) == {"A": "1"}


def test_missing_env_file_is_ignored(app: Path) -> None:
    deployment = env_app(app, 'env_files = [".env.missing"]\n[env]\nA = "1"\n')
    assert resolve_environment(deployment, {}) == {"A": "1"}


def test_resolve_environment_does_not_touch_os_environ(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLAMAWS_TEST_CONFIG_VAR", raising=False)
    deployment = env_app(app, '[env]\nLLAMAWS_TEST_CONFIG_VAR = "1"\n')
    resolve_environment(deployment, {})
    assert "LLAMAWS_TEST_CONFIG_VAR" not in os.environ


@pytest.mark.parametrize(
    ("toml", "files", "environ"),
    [
        ('required_env_vars = ["A"]\n[env]\nA = "1"\n', {}, {}),
        ('required_env_vars = ["A"]\nenv_files = [".env"]\n', {".env": "A=1\n"}, {}),
        ('required_env_vars = ["A"]\n', {}, {"A": "1"}),
    ],
    ids=["env", "env-file", "process-environment"],
)
def test_required_env_vars_may_come_from_any_source(
    app: Path, toml: str, files: dict[str, str], environ: dict[str, str]
) -> None:
    deployment = env_app(app, toml, files)
    resolve_environment(deployment, environ)


def test_missing_required_env_vars_are_listed_sorted_in_one_message(app: Path) -> None:
    deployment = env_app(app, 'required_env_vars = ["B", "PRESENT", "A"]\n')
    with pytest.raises(ConfigError) as caught:
        resolve_environment(deployment, {"PRESENT": "1"})
    assert caught.value.message == (
        "Missing required environment variables defined in required_env_vars: A, B."
    )
    assert str(caught.value).startswith(caught.value.message + " ")


def test_required_env_var_with_empty_value_counts_as_missing(app: Path) -> None:
    deployment = env_app(app, 'required_env_vars = ["A", "B"]\nenv_files = [".env"]\n',
                         {".env": "A=\n"})
    with pytest.raises(ConfigError) as caught:
        resolve_environment(deployment, {"B": ""})
    assert caught.value.message == (
        "Missing required environment variables defined in required_env_vars: A, B."
    )


# -- errors -------------------------------------------------------------------------------


def test_path_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    error = config_error(missing)
    assert error.message == f"Deployment file '{missing}' not found"


def test_directory_without_config(app: Path) -> None:
    error = config_error(app)
    assert error.message == f"No pyproject.toml found at {app.resolve()}."


def test_file_that_is_not_a_deployment_config(app: Path) -> None:
    write(app, {"pyproject.toml": pyproject(body=WORKFLOWS), "README.md": "hi\n"})
    error = config_error(app / "README.md")
    assert error.message == f"'{(app / 'README.md').resolve()}' is not a deployment config"


@pytest.mark.parametrize("file_name", ["llama_agents.toml", "llama_deploy.toml", "pyproject.toml"])
def test_invalid_toml_names_the_file(app: Path, file_name: str) -> None:
    write(app, {file_name: "name = \n"})
    message = config_error(app).message
    assert message.startswith(f"{(app / file_name).resolve()}: invalid TOML: ")


@pytest.mark.parametrize("file_name", ["llama_agents.yaml", "llama_deploy.yaml"])
def test_invalid_yaml_names_the_file(app: Path, file_name: str) -> None:
    write(app, {"pyproject.toml": pyproject(), file_name: "workflows: [unclosed\n"})
    message = config_error(app).message
    assert message.startswith(f"{(app / file_name).resolve()}: invalid YAML: ")


def test_yaml_that_is_not_a_mapping_names_the_file(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "- a\n- b\n"})
    assert config_error(app).message == (
        f"{(app / 'llama_deploy.yaml').resolve()}: expected a mapping at the top level"
    )


def test_invalid_package_json_names_the_file(app: Path) -> None:
    ui_app(app)
    write(app, {"ui/package.json": "{not json"})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'ui' / 'package.json').resolve()}: invalid JSON: ")


@pytest.mark.parametrize("key", ["llamaagents", "llamadeploy"])
def test_package_json_section_that_is_not_an_object_names_the_key(app: Path, key: str) -> None:
    ui_app(app, package={key: "ui"})
    assert config_error(app).message == (
        f"{(app / 'ui' / 'package.json').resolve()}: field '{key}' must be an object"
    )


@pytest.mark.parametrize(
    ("toml", "field", "detail"),
    [
        ('name = "my app"\n' + WORKFLOWS, "name", "is not URL-safe"),
        ('name = "a/b"\n' + WORKFLOWS, "name", "is not URL-safe"),
        ('name = "-x"\n' + WORKFLOWS, "name", "is not URL-safe"),
        ('name = ""\n' + WORKFLOWS, "name", "is not URL-safe"),
        ('[workflows]\necho = "app.echo"\n', "workflows", "is not of the form 'module:attribute'"),
        ('[workflows]\necho = "app:"\n', "workflows", "is not of the form 'module:attribute'"),
        ('app = "server"\n', "app", "is not of the form 'module:attribute'"),
        ('env_files = ".env"\n' + WORKFLOWS, "env_files", "valid list"),
        ("[env]\nA = 1\n" + WORKFLOWS, "env.A", "valid string"),
        (WORKFLOWS + '[ui]\nbuild_command = "b"\n', "ui.directory", "Field required"),
        (WORKFLOWS + UI_DIR + "proxy_port = 0\n", "ui.proxy_port", "greater than or equal to 1"),
        (WORKFLOWS + UI_DIR + "proxy_port = 65536\n", "ui.proxy_port", "less than or equal"),
    ],
    ids=[
        "name-space", "name-slash", "name-leading-dash", "name-empty", "workflow-no-colon",
        "workflow-no-attr", "app-no-colon", "env-files-string", "env-value-int", "ui-no-directory",
        "proxy-port-zero", "proxy-port-too-big",
    ],
)
def test_invalid_field_names_the_file_and_the_field(
    app: Path, toml: str, field: str, detail: str
) -> None:
    write(app, {"llama_deploy.toml": toml})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'llama_deploy.toml').resolve()}: field '{field}': ")
    assert detail in message


def test_invalid_field_in_pyproject_names_pyproject(app: Path) -> None:
    write(app, {"pyproject.toml": pyproject(body='name = "bad name"\n')})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'pyproject.toml').resolve()}: field 'name': ")


def test_invalid_field_in_yaml_names_the_yaml_file(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "workflows:\n  echo: not-a-target\n"})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'llama_deploy.yaml').resolve()}: field 'workflows': ")


def test_invalid_legacy_import_path_names_the_yaml_file(app: Path) -> None:
    write(app, {"llama_deploy.yaml": "name: x\nservices:\n  echo: {import_path: no_colon}\n"})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'llama_deploy.yaml').resolve()}: field 'workflows': ")


def test_invalid_package_json_field_names_package_json(app: Path) -> None:
    ui_app(app, package={"llamadeploy": {"proxy_port": 70000}})
    message = config_error(app).message
    assert message.startswith(f"{(app / 'ui' / 'package.json').resolve()}: field 'proxy_port': ")


# -- against the reference ------------------------------------------------------------------


def _reference_reader() -> Callable[[Path, Path], Any]:
    try:
        module = importlib.import_module("llama_agents.core.deployment_config")
    except ImportError as exc:
        pytest.skip(
            f"the reference llama-agents-core is not importable here ({exc}); "
            "it is deliberately not a dependency"
        )
    reader: Callable[[Path, Path], Any] = module.read_deployment_config
    return reader


DIFFERENTIAL_CASES: dict[str, tuple[dict[str, str], str]] = {
    "pyproject-full": ({
        "pyproject.toml": """
            [project]
            name = "proj"
            [tool.llamadeploy]
            env_files = [".env", ".env.local"]
            required_env_vars = ["A"]
            [tool.llamadeploy.env]
            X = "1"
            [tool.llamadeploy.workflows]
            echo = "app.flows:echo"
            chat = "app.flows:chat"
            [tool.llamadeploy.ui]
            directory = "ui"
            serve_command = "start"
        """,
        "ui/package.json": json.dumps({
            "packageManager": "pnpm@9.1.0",
            "llamadeploy": {"build_output_dir": "out", "proxy_port": 4600},
        }),
    }, "."),
    "agents-toml-over-deploy-toml": ({
        "llama_agents.toml": 'name = "agents"\napp = "server:app"\n',
        "llama_deploy.toml": 'name = "deploy"\napp = "old:app"\n',
        "pyproject.toml": '[project]\nname = "proj"\n',
    }, "."),
    "pyproject-name-from-project": ({
        "pyproject.toml": '[project]\nname = "my_proj"\n[tool.llamaagents.workflows]\n'
                          'echo = "app:echo"\n'
                          '[tool.llamadeploy]\nname = "ignored"\n',
    }, "."),
    "yaml-new-format-merged": ({
        "pyproject.toml": '[project]\nname = "proj"\n[tool.llamadeploy]\n'
                          '[tool.llamadeploy.env]\nA = "toml"\n',
        "llama_agents.yaml": "name: yaml\nworkflows: {echo: 'app:echo'}\nenv: {B: yaml}\n"
                             "ui: {directory: web}\n",
        "web/package.json": json.dumps({"llamaagents": {"serve_command": "serve"}}),
    }, "."),
    "legacy-yaml": ({
        "llama_deploy.yaml": """
            name: legacy
            default_service: echo
            services:
              echo:
                import_path: src/app.flows:echo
                env: {A: "1"}
                env_files: [.env]
              chat: {path: "chat:wf", env-files: [.env.chat]}
            ui:
              source: {location: ui}
        """,
    }, "."),
    "yaml-given-as-path": ({
        "pyproject.toml": '[project]\nname = "proj"\n',
        "deploy.yml": "workflows: {echo: 'app:echo'}\n",
    }, "deploy.yml"),
    "llama-cloud": ({
        "pyproject.toml": '[project]\nname = "proj"\n[tool.llamadeploy]\nllama_cloud = true\n'
                          'env_files = [".env"]\n[tool.llamadeploy.workflows]\necho = "app:echo"\n',
    }, "."),
}


@pytest.mark.parametrize("case", sorted(DIFFERENTIAL_CASES))
def test_resolution_matches_the_reference(app: Path, case: str) -> None:
    read_reference = _reference_reader()
    files, config_path = DIFFERENTIAL_CASES[case]
    write(app, files)
    ours = resolve_deployment(app / config_path).config
    theirs = read_reference(app.resolve(), Path(config_path))

    def fields(config: Any) -> dict[str, Any]:
        ui = config.ui
        return {
            "name": config.name,
            "llama_cloud": config.llama_cloud,
            "workflows": config.workflows,
            "app": config.app,
            # The reference de-duplicates env files through a set (order lost).
            "env_files": sorted(config.env_files),
            "env": config.env,
            "required_env_vars": sorted(config.required_env_vars),
            "ui": None if ui is None else {
                name: getattr(ui, name)
                for name in (
                    "directory", "build_output_dir", "package_manager",
                    "build_command", "serve_command", "proxy_port",
                )
            },
        }

    assert fields(ours) == fields(theirs)


# -- LlamaCloud settings, against llamactl 0.10.4 itself ----------------------------------

LLAMACTL_PROBE = """
import json, os, sys
from pathlib import Path
from llama_agents.cli.commands.serve import _maybe_inject_llama_cloud_credentials
before = dict(os.environ)
_maybe_inject_llama_cloud_credentials(Path(sys.argv[1]), require_cloud=False)
print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))
"""

LLAMA_CLOUD_CASES: dict[str, tuple[bool, dict[str, str], dict[str, str]]] = {
    # llama_cloud, the .env file, the process environment
    "key-and-project-in-env-file": (
        True, {"LLAMA_CLOUD_API_KEY": "llx-file", "LLAMA_DEPLOY_PROJECT_ID": "p-file"}, {},
    ),
    "key-url-project-in-process": (
        True, {}, {"LLAMA_CLOUD_API_KEY": "llx-proc", "LLAMA_CLOUD_BASE_URL": "https://eu.example",
                   "LLAMA_AGENTS_PROJECT_ID": "p-proc"},
    ),
    "env-file-key-wins-over-process": (
        True, {"LLAMA_CLOUD_API_KEY": "llx-file"}, {"LLAMA_CLOUD_API_KEY": "llx-proc"},
    ),
    "not-llama-cloud": (False, {"LLAMA_CLOUD_API_KEY": "llx-file"}, {}),
}  # fmt: skip


@pytest.fixture(scope="session")
def llamactl_python() -> Path:
    """``python`` of a venv holding llamactl 0.10.4 (created once, from the package index)."""
    import shutil
    import subprocess

    from llamaws.builder.dependencies import uv_binary

    from .support import ROOT

    venv = ROOT / ".llamaws" / "reference" / "llamactl-0.10.4"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "llamactl").exists():
        shutil.rmtree(venv, ignore_errors=True)
        uv = uv_binary()
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), "llamactl==0.10.4"],
            check=True,
        )
    return python


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(LLAMA_CLOUD_CASES))
def test_llama_cloud_settings_match_llamactl(
    app: Path, tmp_path: Path, llamactl_python: Path, case: str
) -> None:
    import subprocess

    llama_cloud, env_file, process = LLAMA_CLOUD_CASES[case]
    write(app, {
        "pyproject.toml": pyproject(body=f"llama_cloud = {str(llama_cloud).lower()}\n"
                                         'env_files = [".env"]\n') + "\n" + TOOL_WORKFLOWS,
        ".env": "".join(f"{k}={v}\n" for k, v in env_file.items()),
    })  # fmt: skip
    keep = ("PATH", "LANG", "SYSTEMROOT")
    environ = {k: v for k, v in os.environ.items() if k in keep}
    environ |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), **process}
    done = subprocess.run(
        [str(llamactl_python), "-c", LLAMACTL_PROBE, str(app)],
        cwd=app, env=environ, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])

    deployment = resolve_deployment(app)
    merged = {**environ, **resolve_environment(deployment, environ)}
    ours = {
        k: v
        for k, v in llama_cloud_environment(deployment.config, merged).items()
        if environ.get(k) != v
    }
    assert ours == theirs
