"""The Lambda bundle: the app, ``llamaws.adapter`` and their dependencies for one target.

Built without Docker, for the function's platform and Python:

1. **Dependencies**: exactly the pinned set of
   :func:`llamaws.builder.dependencies.resolve` (profile ``"lambda"``: the app's
   dependencies and what ``llamaws.adapter`` needs at run time; no CDK, typer,
   jinja2, watchfiles or awslambdaric, which Lambda's runtime provides), installed
   with ``uv pip install --target … --python-platform <arch>-manylinux2014
   --python-version X.Y --only-binary :all: --no-deps`` (wheels only; offline from
   uv's cache when the index is unreachable). A pin without a wheel for the target is
   named in one line.
2. **The app** laid out at the bundle's root, which is the function's working
   directory (``LAMBDA_TASK_ROOT``), so the app's relative paths resolve as they do
   locally; its env files (whose values live in SSM / Secrets Manager), its UI sources
   (served from S3), virtualenvs, ``node_modules``, caches and databases stay out.
   ``llamaws/adapter/`` (the handler, and the executable ``exec_wrapper`` that starts
   the streaming runtime loop) is added beside it.
3. **Bytecode** precompiled for the target Python (``unchecked-hash`` ``.pyc``:
   deterministic, never revalidated) by an interpreter of that version found on this
   machine; without one the bundle has sources only, and says so.
4. **A deterministic zip** (sorted entries, fixed timestamps and modes): the same
   inputs give the same bytes, so the CDK asset hash only changes with the content.
5. **Lambda's limits** (50 MB zipped, 250 MB unzipped) checked, naming the largest
   packages when one is exceeded.

A bundle whose inputs did not change is reused as it is (:attr:`Bundle.reused`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import LlamawsError

from .dependencies import Target, uv_binary
from .deterministic_zip import write_zip

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "Bundle",
    "BundleError",
    "MissingWheelError",
    "build_bundle",
    "bundle_requirements",
    "bundle_target",
    "find_interpreter",
]

MAX_ZIPPED_BYTES = 50 * 1024 * 1024
"""Lambda's limit for a zipped deployment package (direct upload)."""
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
"""Lambda's limit for the unzipped package (layers included)."""

FORMAT = "llamaws-lambda-bundle/1"
"""Bumped when the layout changes, so older bundles are rebuilt."""

_PLATFORMS = {"arm64": "aarch64-manylinux2014", "x86_64": "x86_64-manylinux2014"}
_ALWAYS_EXCLUDED = (".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__",
                    ".llamaws", ".mypy_cache", ".pytest_cache", ".ruff_cache", "cdk.out",
                    ".DS_Store", "*.pyc", "workflows.db", "workflows.db-*", ".env", ".env.*",
                    ".emulator-*")  # fmt: skip
_APP_ONLY = ("tests", ".github")
"""Folders at the app's root that stay out of the bundle."""
_TASK_ROOT = "/var/task"
_EXEC_WRAPPER = "lambda_runtime/exec_wrapper"
"""The streaming runtime loop's ``AWS_LAMBDA_EXEC_WRAPPER`` (executable in the bundle)."""


class BundleError(LlamawsError):
    """The bundle cannot be built (or would not fit in Lambda)."""


class MissingWheelError(BundleError):
    """A pinned dependency publishes no wheel for the target platform and Python."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its directory (the function's task root) and its zip."""

    directory: Path
    zip_path: Path
    target: Target
    requirements: tuple[str, ...]
    zipped_bytes: int
    unzipped_bytes: int
    largest: tuple[tuple[str, int], ...]
    """Top-level entries (packages, the app's folders) by unzipped size, largest first."""
    bytecode: str | None
    """The interpreter version that precompiled ``.pyc`` files (None: sources only)."""
    fingerprint: str
    reused: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line: sizes against the limits and the largest entries."""
        largest = ", ".join(f"{name} {_mb(size)}" for name, size in self.largest[:5])
        return (
            f"{_mb(self.zipped_bytes)} zipped, {_mb(self.unzipped_bytes)} unzipped "
            f"(limits {_mb(MAX_ZIPPED_BYTES)} / {_mb(MAX_UNZIPPED_BYTES)}); largest: {largest}"
        )


def bundle_target(architecture: str, python_version: str) -> Target:
    """The :class:`Target` of a function: ``arm64`` / ``x86_64`` and ``3.12``-style version."""
    try:
        return Target(python_version, _PLATFORMS[architecture])
    except KeyError:
        raise BundleError(
            f"no Lambda platform for architecture {architecture!r}",
            hint=f"Use one of {', '.join(_PLATFORMS)}.",
        ) from None


def build_bundle(
    deployment: Deployment,
    requirements: Sequence[str],
    target: Target,
    out_dir: Path | None = None,
    *,
    interpreter: str | None = None,
    force: bool = False,
) -> Bundle:
    """Build (or reuse) the bundle of ``deployment`` for ``target``.

    ``requirements`` are the pinned ``name==version`` lines of the resolution
    (``resolve(app_dir, target, profile="lambda").requirements``). ``out_dir``
    defaults to ``<app>/.llamaws/build``; the bundle is ``lambda-<arch>-py<X.Y>/``
    and its zip sits beside it. ``interpreter`` precompiles the bytecode (default:
    :func:`find_interpreter`; ``""``: sources only).
    """
    if target.platform is None:
        raise BundleError("a Lambda bundle needs a target platform (e.g. aarch64-manylinux2014)")
    out_dir = (out_dir or deployment.config_dir / ".llamaws" / "build").resolve()
    arch = target.platform.split("-", 1)[0]
    name = f"lambda-{arch}-py{target.python_version}"
    directory, zip_path, record = out_dir / name, out_dir / f"{name}.zip", out_dir / f"{name}.json"
    compiler = interpreter if interpreter is not None else find_interpreter(target.python_version)
    compiler_version = _interpreter_version(compiler) if compiler else None
    if compiler_version is not None and not _same_minor(compiler_version, target.python_version):
        raise BundleError(
            f"{compiler} is Python {compiler_version}, the bundle targets "
            f"Python {target.python_version}: its bytecode would not load"
        )
    app_files = sorted(_app_files(deployment), key=lambda pair: pair[0])
    adapter_files = sorted(_adapter_files(), key=lambda pair: pair[0])
    stamp = _fingerprint(target, requirements, app_files, adapter_files, compiler_version)
    if not force:
        reused = _reuse(record, stamp, directory, zip_path)
        if reused is not None:
            return reused

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir))
    try:
        _install(requirements, target, staging)
        _prune_installed(staging)
        _check_collisions(staging, app_files, adapter_files)
        for relative, source in adapter_files:
            _copy(source, staging / relative)
        for relative, source in app_files:
            _copy(source, staging / relative)
        notes: list[str] = []
        if compiler is not None and compiler_version is not None:
            _compile(compiler, staging)
        else:
            notes.append(
                f"no Python {target.python_version} interpreter on this machine: the bundle "
                "ships sources only (a slower cold start); install python"
                f"{target.python_version} to precompile its bytecode"
            )
        sizes = _sizes(staging)
        unzipped = sum(sizes.values())
        largest = tuple(sorted(sizes.items(), key=lambda item: (-item[1], item[0])))
        if unzipped > MAX_UNZIPPED_BYTES:
            raise BundleError(
                f"the bundle is {_mb(unzipped)} unzipped, over Lambda's "
                f"{_mb(MAX_UNZIPPED_BYTES)}; largest: {_largest_text(largest)}",
                hint="Drop or replace the largest dependencies.",
            )
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    zipped = write_zip(directory, zip_path)
    if zipped > MAX_ZIPPED_BYTES:
        raise BundleError(
            f"the bundle is {_mb(zipped)} zipped, over Lambda's {_mb(MAX_ZIPPED_BYTES)}; "
            f"largest: {_largest_text(largest)}",
            hint="Drop or replace the largest dependencies.",
        )
    bundle = Bundle(
        directory=directory,
        zip_path=zip_path,
        target=target,
        requirements=tuple(requirements),
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        largest=largest[:10],
        bytecode=compiler_version,
        fingerprint=stamp,
        notes=tuple(notes),
    )
    record.write_text(json.dumps(_record(bundle), indent=2) + "\n", encoding="utf-8")
    return bundle


def bundle_requirements(
    deployment: Deployment, target: Target, out_dir: Path | None = None
) -> list[str]:
    """The ``lambda`` resolution of the app for ``target``, kept beside the bundle.

    :func:`~llamaws.builder.dependencies.resolve` runs only when its inputs changed
    (:func:`~llamaws.builder.dependencies.fingerprint`), so a synth with nothing new
    needs neither the network nor uv's resolver.
    """
    from .dependencies import fingerprint, resolve

    out_dir = (out_dir or deployment.config_dir / ".llamaws" / "build").resolve()
    assert target.platform is not None
    arch = target.platform.split("-", 1)[0]
    cached = out_dir / f"lambda-{arch}-py{target.python_version}.requirements.txt"
    stamp = f"# fingerprint {fingerprint(deployment.config_dir, target, profile='lambda')}\n"
    if cached.is_file():
        text = cached.read_text(encoding="utf-8")
        if text.startswith(stamp):
            return [line for line in text.splitlines()[1:] if line.strip()]
    resolution = resolve(deployment.config_dir, target, profile="lambda")
    out_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(stamp + resolution.text(), encoding="utf-8")
    return list(resolution.requirements)


def find_interpreter(python_version: str) -> str | None:
    """An interpreter of ``python_version`` (``X.Y``) on this machine, or None.

    This one when it matches, else ``pythonX.Y`` on ``PATH``, else one uv knows about
    (``uv python find``, never downloading).
    """
    wanted = tuple(int(part) for part in python_version.split(".")[:2])
    if sys.version_info[:2] == wanted:
        return sys.executable
    on_path = shutil.which(f"python{wanted[0]}.{wanted[1]}")
    if on_path:
        return on_path
    try:
        found = subprocess.run(
            [uv_binary(), "python", "find", "--no-project", f"{wanted[0]}.{wanted[1]}"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    path = found.stdout.strip()
    return path if found.returncode == 0 and path else None


# -- steps ------------------------------------------------------------------------


def _install(requirements: Sequence[str], target: Target, into: Path) -> None:
    assert target.platform is not None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("".join(f"{line}\n" for line in requirements))
        requirements_file = handle.name
    command = [
        uv_binary(), "pip", "install", "--target", str(into), "--no-deps",
        "--python-platform", target.platform, "--python-version", target.python_version,
        "--only-binary", ":all:", "--link-mode", "copy", "--no-config",
        "--color", "never", "--quiet", "-r", requirements_file,
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0 and _is_network_error(done.stderr):
            done = subprocess.run(
                [*command, "--offline"], capture_output=True, text=True, env=env, check=False
            )
    finally:
        os.unlink(requirements_file)
    if done.returncode == 0:
        return
    described = f"Python {target.python_version} on {target.platform}"
    missing = re.search(
        r"Because ([A-Za-z0-9_.\-]+)==(\S+?) has no (?:usable )?wheels", done.stderr
    )
    if missing:
        name, version = missing.groups()
        raise MissingWheelError(
            f"{name}=={version} has no wheel for {described} (Lambda needs one: no builds "
            "from source without Docker)",
            hint=f"Pin a {name} version that publishes such a wheel, or replace the package.",
        )
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    raise BundleError(
        f"installing the bundle's dependencies for {described} failed: "
        f"{' '.join(lines[-2:]) or '(uv printed nothing)'}",
        hint="Check the network (or uv's cache) and the app's dependencies.",
    )


def _is_network_error(stderr: str) -> bool:
    markers = ("error sending request", "dns error", "Failed to fetch", "Could not connect")
    return any(marker in stderr for marker in markers)


def _prune_installed(root: Path) -> None:
    """Console scripts (``bin/``) are of no use in Lambda and name this machine's Python."""
    shutil.rmtree(root / "bin", ignore_errors=True)
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def _compile(interpreter: str, root: Path) -> None:
    command = [
        interpreter, "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", _TASK_ROOT, str(root),
    ]  # fmt: skip
    # A few wheels ship files that do not compile (templates, other Pythons' code):
    # compileall reports them and goes on; those files are never imported.
    subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "315532800"},
    )


# -- inputs -----------------------------------------------------------------------


def _app_files(deployment: Deployment) -> Iterator[tuple[str, Path]]:
    """(path in the bundle, source) of every app file that ships."""
    root = deployment.config_dir
    config = deployment.config
    excluded_paths = {Path(env_file).as_posix() for env_file in config.env_files}
    # The app's own tests and CI do not run in Lambda; a top-level ``tests`` package
    # would also shadow the one dynamodb-json installs.
    excluded_paths.update(_APP_ONLY)
    if config.ui is not None:
        excluded_paths.add(Path(config.ui.directory).as_posix().rstrip("/"))
    for current, dirs, files in os.walk(root):
        relative_dir = Path(current).relative_to(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not _excluded(d) and (relative_dir / d).as_posix() not in excluded_paths
        )
        for name in sorted(files):
            relative = (relative_dir / name).as_posix()
            if _excluded(name) or relative in excluded_paths:
                continue
            yield relative, Path(current) / name


def _adapter_files() -> Iterator[tuple[str, Path]]:
    import llamaws.adapter

    package = Path(llamaws.adapter.__file__).resolve().parent
    for path in sorted([*package.rglob("*.py"), package / _EXEC_WRAPPER]):
        if "__pycache__" in path.parts:
            continue
        yield f"llamaws/adapter/{path.relative_to(package).as_posix()}", path


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in _ALWAYS_EXCLUDED)


def _check_collisions(
    installed: Path,
    app_files: Iterable[tuple[str, Path]],
    adapter_files: Iterable[tuple[str, Path]],
) -> None:
    taken = {entry.name for entry in installed.iterdir()}
    for relative, source in [*adapter_files, *app_files]:
        top = relative.split("/", 1)[0]
        if top in taken:
            raise BundleError(
                f"the app's {source} would overwrite the installed package entry {top!r} "
                "at the bundle's root",
                hint="Rename that file or folder of the app (or move it under src/).",
            )


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    if os.access(source, os.X_OK) or target.as_posix().endswith(f"/adapter/{_EXEC_WRAPPER}"):
        target.chmod(0o755)


def _fingerprint(
    target: Target,
    requirements: Sequence[str],
    app_files: Sequence[tuple[str, Path]],
    adapter_files: Sequence[tuple[str, Path]],
    compiler_version: str | None,
) -> str:
    digest = hashlib.sha256()
    header = [FORMAT, target.python_version, target.platform, compiler_version, *requirements]
    digest.update(json.dumps(header).encode())
    for relative, source in [*adapter_files, *app_files]:
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(source.read_bytes()).digest())
        digest.update(b"x" if os.access(source, os.X_OK) else b"-")
    return digest.hexdigest()


def _reuse(record: Path, stamp: str, directory: Path, zip_path: Path) -> Bundle | None:
    if not (record.is_file() and directory.is_dir() and zip_path.is_file()):
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if data.get("fingerprint") != stamp or data.get("zipped_bytes") != zip_path.stat().st_size:
        return None
    return Bundle(
        directory=directory,
        zip_path=zip_path,
        target=Target(**data["target"]),
        requirements=tuple(data["requirements"]),
        zipped_bytes=data["zipped_bytes"],
        unzipped_bytes=data["unzipped_bytes"],
        largest=tuple((name, size) for name, size in data["largest"]),
        bytecode=data["bytecode"],
        fingerprint=stamp,
        reused=True,
        notes=tuple(data.get("notes", ())),
    )


def _record(bundle: Bundle) -> dict[str, object]:
    data = asdict(bundle)
    data.pop("reused")
    data["directory"] = str(bundle.directory)
    data["zip_path"] = str(bundle.zip_path)
    return data


# -- sizes ------------------------------------------------------------------------


def _sizes(root: Path) -> dict[str, int]:
    """Unzipped bytes per top-level entry of the bundle."""
    sizes: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sizes


def _largest_text(largest: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {_mb(size)}" for name, size in largest[:5])


def _interpreter_version(interpreter: str) -> str | None:
    try:
        done = subprocess.run(
            [interpreter, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _same_minor(version: str, other: str) -> bool:
    return version.split(".")[:2] == other.split(".")[:2]


def _mb(size: int) -> str:
    """Megabytes as Lambda counts them (2**20 bytes)."""
    return f"{size / 2**20:.1f} MB"
