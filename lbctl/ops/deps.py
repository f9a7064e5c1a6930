"""Plugin dependencies: wheels for offline installs (`deps download`), a local index (`index serve`,
`runtime serve --wheelhouse`), and whether requirements resolve (`doctor`)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from packaging.utils import parse_wheel_filename

from lbctl import index, lbpkg, requirements, wheelhouse
from lbctl.context import Context
from lbctl.errors import LbctlError, NetworkError, UsageError
from lbctl.fsutil import sha256_file
from lbctl.models import Result

WHEELHOUSE_ENV = "LBCTL_WHEELHOUSE"
INDEX_ENV = "LANGBOT_PLUGIN_PYPI_INDEX_URL"  # the runtime's own setting, inherited by the runtime we start
PYPI = "https://pypi.org/simple"
_PYTHON_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
_PLATFORM = re.compile(r"^[A-Za-z0-9_.]+$")
_NO_VERSION = re.compile(r"satisfies the requirement (\S+)( \(from [^)]*\))? \(from versions: (.*)\)")


def download_wheels(ctx: Context, packages: Sequence[tuple[str, Sequence[str]]], dest_dir: Path, *,
                    python_version: str | None = None, platform: str | None = None,
                    allow_sdist: bool = False) -> list[dict]:
    """Save the requirements of every package, given as (plugin id, requirements), as wheels under DEST/wheels:
    one entry per wheel.

    Each plugin's requirements are resolved together, with their own dependencies, as the runtime installs
    them; plugins are resolved apart because the runtime gives each its own environment. Only published wheels
    unless `allow_sdist` (then source distributions are built, which runs their build code).
    """
    check_target(python_version, platform, allow_sdist)
    wheels: dict[str, dict] = {}
    for plugin_id, plugin_requirements in packages:
        try:
            needed = requirements.check(requirements.installable(plugin_requirements))
            if not needed:
                continue
            files = wheelhouse.fetch(needed, Path(dest_dir) / "wheels", python_version=python_version,
                                     platform=platform, offline=ctx.settings.offline, allow_sdist=allow_sdist)
        except LbctlError as exc:
            raise type(exc)(f"{plugin_id}: {exc.message}", hint=exc.hint, plugin=plugin_id) from None
        for file in files:
            wheels.setdefault(file.name, _wheel(file))["plugins"].append(plugin_id)
    return sorted(wheels.values(), key=lambda w: w["file"])


def installed_requirements(ctx: Context) -> list[tuple[str, tuple[str, ...]]]:
    """(plugin id, requirements) of every installed plugin, read again from its stored package: a line this
    lbctl refuses (in a package an older one stored) is refused here too, naming the plugin."""
    found = []
    for plugin_id, record in sorted(ctx.env.load().plugins.items()):
        try:
            found.append((plugin_id, lbpkg.read_requirements(ctx.env.package_path(record.sha256))))
        except LbctlError as exc:
            raise type(exc)(f"{plugin_id}: {exc.message}", hint=exc.hint, plugin=plugin_id) from None
    return found


def download(ctx: Context, dest_dir: Path, *, python_version: str | None = None,
             platform: str | None = None, allow_sdist: bool = False) -> Result:
    """`deps download`: the wheels of everything installed."""
    check_target(python_version, platform, allow_sdist)
    wheels = download_wheels(ctx, installed_requirements(ctx), dest_dir, python_version=python_version,
                             platform=platform, allow_sdist=allow_sdist)
    lines = [f"saved {w['name']} {w['version']} -> {w['path']} ({', '.join(w['plugins'])})\n" for w in wheels]
    warnings = () if wheels else ("No installed plugin has requirements beyond langbot-plugin: nothing to save.",)
    return Result("deps download", "wheels", {"wheels": wheels, "path": str(Path(dest_dir) / "wheels")},
                  warnings=warnings, text="".join(lines))


def serve_index(ctx: Context, path: Path, *, host: str = "127.0.0.1", port: int = 8080) -> Result:
    """`index serve`: serve a wheelhouse until SIGTERM or SIGINT."""
    with index.serving(path, host=host, port=port) as server:
        _wait_for_signal()
        served = server.served
    return Result("index serve", "none", {"url": server.url, "root": str(server.root), "requests": served})


@contextlib.contextmanager
def runtime_index(wheelhouse_dir: Path | None, pypi_index_url: str | None,
                  connect: str | None) -> Iterator[str | None]:
    """The index URL for the runtime we start: a local one serving `wheelhouse_dir` while the block runs."""
    if wheelhouse_dir is None:
        yield pypi_index_url
        return
    if pypi_index_url:
        raise UsageError("--wheelhouse cannot be combined with --pypi-index-url",
                         hint="--wheelhouse makes the wheelhouse the runtime's only index; pass one of them.")
    if connect:
        raise UsageError("--wheelhouse cannot be combined with --connect",
                         hint="A runtime attached with --connect has its own index: serve it with `lbctl index serve`.")
    with index.serving(wheelhouse_dir) as server:
        yield server.url


def configured_source(environ: Mapping[str, str] = os.environ) -> tuple[str, Path | str]:
    """Where the runtime gets dependencies: ("wheelhouse", DIR) or ("index", URL), as `runtime serve` does."""
    if environ.get(WHEELHOUSE_ENV):
        return "wheelhouse", index.wheel_dir(Path(environ[WHEELHOUSE_ENV]))
    return "index", environ.get(INDEX_ENV) or PYPI


def unresolvable(requirements_by_plugin: Mapping[str, Sequence[str]], source: tuple[str, Path | str], *,
                 timeout: float) -> tuple[list[str], int]:
    """Every requirement that does not resolve, as 'plugin: requirement (why)', and how many packages did.

    A plugin's requirements are resolved together; when that fails each is tried alone to name the culprits.
    NetworkError propagates: an unreachable index says nothing about the requirements.
    """
    problems: list[str] = []
    packages = 0
    for plugin_id, needed in sorted(requirements_by_plugin.items()):
        try:
            packages += len(_resolve(needed, source, timeout))
        except NetworkError:
            raise
        except LbctlError as exc:
            problems += _culprits(plugin_id, needed, source, timeout, exc)
    return problems, packages


def _culprits(plugin_id: str, needed: Sequence[str], source: tuple[str, Path | str], timeout: float,
              failure: LbctlError) -> list[str]:
    if len(needed) == 1:
        return [f"{plugin_id}: {needed[0]} ({_why(failure.message)})"]
    found = []
    for requirement in needed:
        try:
            _resolve([requirement], source, timeout)
        except NetworkError:
            raise
        except LbctlError as exc:
            found.append(f"{plugin_id}: {requirement} ({_why(exc.message)})")
    return found or [f"{plugin_id}: its requirements conflict ({failure.message})"]


def _why(message: str) -> str:
    match = _NO_VERSION.search(message)
    if match is None:
        return message
    missing, transitive, versions = match.groups()
    what = "no wheel found" if versions == "none" else f"no matching wheel; available: {versions}"
    return f"needs {missing}, {what}" if transitive else what


def _resolve(needed: Sequence[str], source: tuple[str, Path | str], timeout: float) -> list[dict]:
    kind, where = source
    if kind == "wheelhouse":
        return wheelhouse.resolve(needed, find_links=Path(where), timeout=timeout)
    return wheelhouse.resolve(needed, index_url=str(where), timeout=timeout)


def _wheel(path: Path) -> dict:
    name, version, _, _ = parse_wheel_filename(path.name)
    return {"name": str(name), "version": str(version), "file": path.name, "path": str(path),
            "sha256": sha256_file(path), "plugins": []}


def check_target(python_version: str | None, platform: str | None, allow_sdist: bool = False) -> None:
    """UsageError for a --python-version or --platform pip would not take (call it before downloading)."""
    if python_version is not None and not _PYTHON_VERSION.match(python_version):
        raise UsageError(f"Invalid --python-version {python_version!r}: use X.Y, e.g. 3.11")
    if platform is not None and not _PLATFORM.match(platform):
        raise UsageError(f"Invalid --platform {platform!r}: use a wheel platform tag, e.g. manylinux2014_x86_64")
    if allow_sdist and (python_version or platform):
        raise UsageError("--allow-sdist builds wheels for this Python only: it cannot go with --python-version "
                         "or --platform")


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
