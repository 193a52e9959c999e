"""Deployment config: the models and their resolution from an app directory.

Resolution is a pure function of the files on disk (files in, model out), with the
same precedence as ``llamactl`` 0.10.4 / ``llama-agents-core`` 0.10.2:

1. ``llama_agents.toml``, else ``llama_deploy.toml`` (a top-level DeploymentConfig);
2. else ``pyproject.toml`` ``[tool.llamaagents]``, else ``[tool.llamadeploy]``
   (a missing ``name`` becomes ``project.name`` verbatim);
3. when that names no workflows, ``llama_agents.yaml`` / ``llama_deploy.yaml`` (or the
   YAML file given as the path) is merged in, new or legacy (``services:``) format;
4. the UI directory's ``package.json`` keys ``llamaagents`` / ``llamadeploy`` override
   the UI fields; ``packageManager: "pnpm@9"`` gives ``package_manager = "pnpm"``.

Applying the environment (``env`` then each env file in order) is left to the caller:
:func:`resolve_environment` computes it, it does not touch ``os.environ``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = [
    "AUTH_MODES",
    "LLAMA_CLOUD_DEFAULT_BASE_URL",
    "AuthMode",
    "Deployment",
    "DeploymentConfig",
    "UIConfig",
    "llama_cloud_environment",
    "missing_env_files",
    "read_settings_table",
    "resolve_auth",
    "resolve_deployment",
    "resolve_environment",
    "resolve_streaming",
]

DEFAULT_DEPLOYMENT_NAME = "default"
TOML_FILES = ("llama_agents.toml", "llama_deploy.toml")
YAML_FILES = ("llama_agents.yaml", "llama_deploy.yaml")
LLAMA_CLOUD_DEFAULT_BASE_URL = "https://api.cloud.llamaindex.ai"
_LLAMA_CLOUD_PUBLIC_PREFIXES = ("PUBLIC_", "VITE_", "NEXT_PUBLIC_")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_IMPORT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class UIConfig(BaseModel):
    """Where the UI lives and how it is built and served (``[…ui]``)."""

    model_config = ConfigDict(extra="ignore")

    directory: str
    build_output_dir: str | None = None
    package_manager: str = "npm"
    build_command: str = "build"
    serve_command: str = "dev"
    proxy_port: int = Field(default=4502, ge=1, le=65535)


class DeploymentConfig(BaseModel):
    """A deployment: its name, its workflows (or one ``app``), env and UI."""

    model_config = ConfigDict(extra="ignore")

    name: str = DEFAULT_DEPLOYMENT_NAME
    llama_cloud: bool = False
    app: str | None = None
    workflows: dict[str, str] = Field(default_factory=dict)
    env_files: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    required_env_vars: list[str] = Field(default_factory=list)
    ui: UIConfig | None = None

    @field_validator("name")
    @classmethod
    def _url_safe_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"{value!r} is not URL-safe: use letters, digits, '.', '_' and '-'")
        return value

    @field_validator("app")
    @classmethod
    def _app_import_path(cls, value: str | None) -> str | None:
        if value is not None and not _IMPORT_RE.match(value):
            raise ValueError(f"{value!r} is not of the form 'module:attribute'")
        return value

    @field_validator("workflows")
    @classmethod
    def _workflow_import_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            if not _IMPORT_RE.match(target):
                raise ValueError(
                    f"workflow {name!r}: {target!r} is not of the form 'module:attribute'"
                )
        return value

    def has_workflows(self) -> bool:
        """Whether the config names any workflow (directly or through ``app``)."""
        return bool(self.workflows) or self.app is not None


@dataclass(frozen=True)
class Deployment:
    """A resolved deployment: the config plus where it was read from."""

    config: DeploymentConfig
    config_dir: Path
    """The directory holding the config; relative paths start here."""
    config_file: Path
    """The file that defined the workflows (named in error messages)."""
    source_root: Path
    """The tree that referenced paths (UI dir) must stay inside."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_path(self) -> str:
        """The URL prefix of the deployment's API: ``/deployments/<name>``."""
        return f"/deployments/{self.config.name}"

    @property
    def ui_dir(self) -> Path | None:
        ui = self.config.ui
        return None if ui is None else self.config_dir / ui.directory

    @property
    def ui_build_dir(self) -> Path | None:
        ui = self.config.ui
        if ui is None:
            return None
        if ui.build_output_dir:
            return self.config_dir / ui.build_output_dir
        return self.config_dir / ui.directory / "dist"

    @property
    def python_paths(self) -> list[Path]:
        """Import roots for workflow modules: ``src/`` (when present) and the app dir."""
        src = self.config_dir / "src"
        return [src, self.config_dir] if src.is_dir() else [self.config_dir]


def resolve_deployment(path: Path) -> Deployment:
    """Read the deployment config found at ``path`` (an app directory or a config file)."""
    path = path.expanduser()
    if not path.exists():
        raise ConfigError(f"Deployment file '{path}' not found")
    path = path.resolve()
    explicit_yaml: Path | None = None
    if path.is_file():
        if path.suffix in (".yaml", ".yml"):
            explicit_yaml = path
        elif path.name not in (*TOML_FILES, "pyproject.toml"):
            raise ConfigError(
                f"'{path}' is not a deployment config",
                hint="Pass the app directory, a pyproject.toml, llama_deploy.toml or a YAML file.",
            )
        config_dir = path.parent
    else:
        config_dir = path

    config, config_file = _read_toml_config(config_dir)
    if not config.has_workflows():
        yaml_path = explicit_yaml or _first_existing(config_dir, YAML_FILES)
        if yaml_path is not None:
            config = _merge(config, _read_yaml_config(yaml_path))
            config_file = yaml_path
    if config_file is None:
        raise ConfigError(
            f"No pyproject.toml found at {config_dir}.",
            hint="Add [tool.llamadeploy] to pyproject.toml (or a llama_deploy.toml).",
        )
    if not config.has_workflows():
        raise ConfigError(
            f"{config_file}: no workflows configured",
            hint="Set 'workflows = {name = \"module:attr\"}' or 'app = \"module:attr\"'.",
        )
    if config.app is not None and config.workflows:
        raise ConfigError(
            f"{config_file}: both 'app' and 'workflows' are set",
            hint="Keep one: 'app' serves a whole WorkflowServer, 'workflows' lists workflows.",
        )

    source_root = _source_root(config_dir)
    if config.ui is not None:
        ui = _apply_package_json(config, config_dir)
        config = config.model_copy(update={"ui": ui})
        _check_inside(config_dir / ui.directory, source_root, config_file, "ui.directory")
        if ui.build_output_dir:
            _check_inside(
                config_dir / ui.build_output_dir,
                source_root,
                config_file,
                "ui.build_output_dir",
            )
    return Deployment(config, config_dir, config_file, source_root)


def resolve_environment(deployment: Deployment, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to set for the app: ``env``, then each env file in order.

    Later sources overwrite earlier ones; empty values are skipped. Raises
    :class:`ConfigError` when a ``required_env_vars`` name is missing or empty in
    ``environ`` plus those variables.
    """
    from dotenv import dotenv_values

    config = deployment.config
    values: dict[str, str] = dict(config.env)
    for env_file in config.env_files:
        file_values = dotenv_values(deployment.config_dir / env_file)
        values.update({k: v for k, v in file_values.items() if isinstance(v, str)})
    values = {k: v for k, v in values.items() if v}
    merged = {**environ, **values}
    missing = sorted(name for name in config.required_env_vars if not merged.get(name))
    if missing:
        raise ConfigError(
            "Missing required environment variables defined in required_env_vars: "
            f"{', '.join(missing)}.",
            hint="Provide them via your environment or the deployment's env files.",
        )
    return values


def missing_env_files(deployment: Deployment) -> list[Path]:
    """The ``env_files`` that do not exist (resolution skips them, like the reference)."""
    return [
        deployment.config_dir / name
        for name in deployment.config.env_files
        if not (deployment.config_dir / name).is_file()
    ]


def llama_cloud_environment(config: DeploymentConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The LlamaCloud variables to set for the app and its UI (``llama_cloud = true``).

    What ``llamactl serve`` 0.10.4 injects from an API key found in ``environ`` (the
    process environment plus the app's own variables): ``LLAMA_CLOUD_API_KEY``,
    ``LLAMA_CLOUD_BASE_URL`` (default ``https://api.cloud.llamaindex.ai``), copies of
    both prefixed ``PUBLIC_``, ``VITE_`` and ``NEXT_PUBLIC_`` for UI frameworks, and the
    project id (``LLAMA_AGENTS_PROJECT_ID``, else ``LLAMA_DEPLOY_PROJECT_ID``) under both
    names. Nothing without ``llama_cloud``; no key: only the project id.
    """
    if not config.llama_cloud:
        return {}
    values: dict[str, str] = {}
    project_id = environ.get("LLAMA_AGENTS_PROJECT_ID") or environ.get("LLAMA_DEPLOY_PROJECT_ID")
    if project_id:
        values["LLAMA_AGENTS_PROJECT_ID"] = project_id
        values["LLAMA_DEPLOY_PROJECT_ID"] = project_id
    key = environ.get("LLAMA_CLOUD_API_KEY")
    if key:
        url = environ.get("LLAMA_CLOUD_BASE_URL") or LLAMA_CLOUD_DEFAULT_BASE_URL
        for prefix in ("", *_LLAMA_CLOUD_PUBLIC_PREFIXES):
            values[f"{prefix}LLAMA_CLOUD_API_KEY"] = key
            values[f"{prefix}LLAMA_CLOUD_BASE_URL"] = url
    return values


AuthMode = Literal["key", "iam", "none"]
"""How a deployed API authenticates callers (``[tool.llamaws] auth``; see ``docs/auth.md``)."""
AUTH_MODES: tuple[AuthMode, ...] = ("key", "iam", "none")
DEFAULT_AUTH: AuthMode = "key"


def resolve_auth(deployment: Deployment, override: str | None = None) -> AuthMode:
    """The deployment's ``auth`` setting: ``override`` (``LLAMAWS_AUTH``, set by the stack
    or the emulator), else ``[tool.llamaws] auth``, else ``"key"``: never open by default.

    ``[tool.llamaws]`` is read from the deployment's TOML config file when it has that
    table, else from the app's ``pyproject.toml``.
    """
    if override:
        return _auth_value(override, "LLAMAWS_AUTH")
    table, path = read_settings_table(deployment)
    if "auth" not in table:
        return DEFAULT_AUTH
    return _auth_value(table["auth"], f"{path}: [tool.llamaws] field 'auth'")


def resolve_streaming(deployment: Deployment, override: str | None = None) -> bool:
    """Whether the deployed function streams responses (``[tool.llamaws] streaming``,
    default true) or answers event streams with the bounded long-poll (false).

    ``override`` (``LLAMAWS_STREAMING``, read by the emulator) wins: ``1``/``true`` or
    ``0``/``false``. See ``docs/lambda.md``, "Event streams".
    """
    if override:
        return _flag(override, "LLAMAWS_STREAMING")
    table, path = read_settings_table(deployment)
    if "streaming" not in table:
        return True
    value = table["streaming"]
    if not isinstance(value, bool):
        raise ConfigError(
            f"{path}: [tool.llamaws] field 'streaming': {value!r} is not a boolean",
            hint="Use streaming = true (response streaming) or false (the long-poll).",
        )
    return value


def _flag(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}={value!r} is not a boolean", hint="Use 1 or 0.")


def read_settings_table(deployment: Deployment) -> tuple[dict[str, Any], Path | None]:
    """``[tool.llamaws]`` of the deployment's TOML config file, else of its
    ``pyproject.toml``, and the file it came from (``({}, None)``: none)."""
    for path in dict.fromkeys([deployment.config_file, deployment.config_dir / "pyproject.toml"]):
        if path.suffix != ".toml" or not path.is_file():
            continue
        table = _load_toml(path).get("tool", {}).get("llamaws")
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.llamaws] must be a table")
        return dict(table), path
    return {}, None


def _auth_value(value: object, where: str) -> AuthMode:
    if value not in AUTH_MODES:
        raise ConfigError(
            f"{where}: {value!r} is not an auth mode",
            hint='Use "key" (API keys, the default), "iam" (SigV4) or "none" (open).',
        )
    return value


# -- reading -----------------------------------------------------------------


def _first_existing(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def _read_toml_config(config_dir: Path) -> tuple[DeploymentConfig, Path | None]:
    toml_path = _first_existing(config_dir, TOML_FILES)
    if toml_path is not None:
        return _validate(_load_toml(toml_path), toml_path), toml_path
    pyproject = config_dir / "pyproject.toml"
    if not pyproject.is_file():
        return DeploymentConfig(), None
    data = _load_toml(pyproject)
    tool = data.get("tool", {})
    # As the reference: no section still counts as an empty one (project.name applies).
    section = (
        (tool.get("llamaagents") or tool.get("llamadeploy") or {})
        if isinstance(tool, dict)
        else None
    )
    if not isinstance(section, dict):
        return DeploymentConfig(), pyproject
    section = dict(section)
    if "name" not in section:
        project_name = data.get("project", {}).get("name")
        if isinstance(project_name, str):
            section["name"] = project_name
    return _validate(section, pyproject), pyproject


def _read_yaml_config(path: Path) -> DeploymentConfig:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if "services" in loaded:
        return _from_legacy_yaml(loaded, path)
    return _validate(loaded, path)


def _from_legacy_yaml(data: dict[str, Any], path: Path) -> DeploymentConfig:
    """The pre-0.9 ``llama_deploy.yaml`` format: ``name``, ``services``, ``ui``."""
    workflows: dict[str, str] = {}
    env: dict[str, str] = {}
    env_files: list[str] = []
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise ConfigError(f"{path}: field 'services' must be a mapping")
    for service_name, service in services.items():
        if not isinstance(service, dict):
            raise ConfigError(f"{path}: field 'services.{service_name}' must be a mapping")
        import_path = (
            service.get("import_path") or service.get("import-path") or service.get("path")
        )
        if import_path:
            module, _, attr = str(import_path).rpartition(":")
            workflows[service_name] = f"{Path(module).name}:{attr}"
        service_env = service.get("env") or {}
        service_env_files = service.get("env_files") or service.get("env-files") or []
        if not isinstance(service_env, dict):
            raise ConfigError(f"{path}: field 'services.{service_name}.env' must be a mapping")
        if not isinstance(service_env_files, list):
            # A bare string would otherwise be split into one "file" per character.
            raise ConfigError(f"{path}: field 'services.{service_name}.env_files' must be a list")
        env.update(service_env)
        env_files.extend(service_env_files)
    default_service = data.get("default_service") or data.get("default-service")
    if default_service:
        if default_service not in workflows:
            raise ConfigError(
                f"{path}: field 'default_service' names {default_service!r}, "
                "which is not a service with an import_path"
            )
        workflows["default"] = workflows[default_service]
    ui_data = data.get("ui")
    ui_source = (ui_data.get("source") or {}) if isinstance(ui_data, dict) else {}
    if not isinstance(ui_source, dict):
        raise ConfigError(f"{path}: field 'ui.source' must be a mapping")
    ui_dir = ui_source.get("location") or ui_source.get("name")
    payload: dict[str, Any] = {
        "name": data.get("name", DEFAULT_DEPLOYMENT_NAME),
        "workflows": workflows,
        "env": env,
        "env_files": list(dict.fromkeys(env_files)),
    }
    if ui_dir:
        payload["ui"] = {"directory": ui_dir}
    return _validate(payload, path)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _validate(data: dict[str, Any], path: Path) -> DeploymentConfig:
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"field '{field}': {message}" if field else message


# -- merging -----------------------------------------------------------------


def _merge(base: DeploymentConfig, other: DeploymentConfig) -> DeploymentConfig:
    """Merge a YAML config into the TOML one (values already set in ``base`` win)."""
    ui = base.ui or other.ui
    if base.ui is not None and other.ui is not None:
        ui = _merge_ui(base.ui, other.ui)
    return DeploymentConfig(
        name=base.name if base.name != DEFAULT_DEPLOYMENT_NAME else other.name,
        llama_cloud=base.llama_cloud or other.llama_cloud,
        app=base.app or other.app,
        workflows={**base.workflows, **other.workflows},
        env_files=list(dict.fromkeys([*base.env_files, *other.env_files])),
        env={**base.env, **other.env},
        required_env_vars=list(dict.fromkeys([*base.required_env_vars, *other.required_env_vars])),
        ui=ui,
    )


def _merge_ui(base: UIConfig, other: UIConfig) -> UIConfig:
    """Fields of ``base`` that differ from the defaults win; the rest come from ``other``."""
    defaults = UIConfig(directory=base.directory)
    merged = {
        field: getattr(base, field)
        if getattr(base, field) != getattr(defaults, field)
        else getattr(other, field)
        for field in UIConfig.model_fields
        if field != "directory"
    }
    return UIConfig(directory=base.directory, **merged)


def _apply_package_json(config: DeploymentConfig, config_dir: Path) -> UIConfig:
    assert config.ui is not None
    package_json = config_dir / config.ui.directory / "package.json"
    if not package_json.is_file():
        return config.ui
    try:
        data = json.loads(package_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{package_json}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        return config.ui
    key = "llamaagents" if data.get("llamaagents") else "llamadeploy"
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{package_json}: field '{key}' must be an object")
    payload: dict[str, Any] = {"directory": config.ui.directory, **section}
    manager = data.get("packageManager")
    if "package_manager" not in payload and isinstance(manager, str) and manager:
        payload["package_manager"] = manager.split("@", 1)[0] or "npm"
    try:
        from_package = UIConfig.model_validate(payload)
    except ValidationError as exc:
        raise ConfigError(f"{package_json}: {_first_problem(exc)}") from exc
    if from_package.build_output_dir is not None:
        # package.json paths are relative to the UI directory.
        from_package.build_output_dir = str(
            Path(config.ui.directory) / from_package.build_output_dir
        )
    return _merge_ui(from_package, config.ui).model_copy(update={"directory": config.ui.directory})


# -- paths -------------------------------------------------------------------


def _source_root(config_dir: Path) -> Path:
    """The enclosing git work tree, else the config directory."""
    for candidate in (config_dir, *config_dir.parents):
        if (candidate / ".git").exists():
            return candidate
    return config_dir


def _check_inside(path: Path, root: Path, config_file: Path, field: str) -> None:
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"{config_file}: field '{field}' points outside the source root {root}",
            hint="Keep the UI inside the app's source tree.",
        )
