"""`lbctl doctor`: check the environment, the marketplace and the runtime; one line per check."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

from lbctl import configschema, lbpkg, requirements
from lbctl.context import Context
from lbctl.errors import LbctlError
from lbctl.fsutil import sha256_file
from lbctl.models import Result
from lbctl.state import SCHEMA, State

RUNTIME_DIST = "langbot-plugin"
RUNTIME_HINT = "Install it with `pip install 'lbctl[runtime]'`."
MIN_FREE_BYTES = 64 * 1024 * 1024  # a package may be this large


def _check(name: str, ok: bool, detail: str, hint: str | None = None) -> dict:
    return {"name": name, "ok": ok, "detail": detail, "hint": hint}


def doctor(ctx: Context) -> Result:
    from lbctl.ops.fleet import each

    return each(ctx, "doctor", lambda target: _report(CHECKS[target.kind](ctx, target)))


def _report(checks: list[dict]) -> Result:
    errors = tuple({"code": "check_failed", "message": f"{c['name']}: {c['detail']}", "hint": c["hint"],
                    "plugin": None} for c in checks if not c["ok"])
    return Result("doctor", "doctor", {"checks": checks}, errors=errors, exit_code=1 if errors else 0)


def _langbot(ctx: Context, target) -> list[dict]:
    """Spec §8: reachable, authenticated, version supported, runtime connected, marketplace reachable from lbctl."""
    report = target.describe()
    problems = report.get("problems") or {}

    def why(probe: str, default: str) -> str:
        return problems.get(probe, {}).get("message", default)

    version = str(report.get("version") or "")
    checks = [
        _check("reachable", report["reachable"], f"{target.url}" if report["reachable"] else why("reachable", "")),
        _check("authenticated", report["authenticated"], f"API key from {report['api_key']}" if report["authenticated"]
               else why("authenticated", "no key"), f"`lbctl target login {target.name}`"),
        _check("version", _supported(version), f"LangBot {version or 'unknown'} (4.10 or later is supported)"),
        _check("runtime", report["runtime_connected"], "plugin runtime connected" if report["runtime_connected"]
               else why("runtime_connected", "not connected"), "Check LangBot's plugin runtime and its logs."),
    ]
    if not report["reachable"]:
        return checks + [_check("marketplace", False, "not checked: LangBot did not say which one it uses")]
    return checks + [_marketplace(ctx, target.index_url)]


def _supported(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version.lstrip("v")) >= Version("4.10")
    except InvalidVersion:
        return False


def _local(ctx: Context, target) -> list[dict]:
    checks = []
    state = None
    try:
        state = ctx.env.load()
        checks.append(_environment_ok(ctx, state))
    except LbctlError as exc:
        checks.append(_check("environment", False, exc.message, exc.hint))
    for name, fn in (("packages", _packages), ("config", _config), ("dependencies", _dependencies)):
        if state is None:
            checks.append(_check(name, False, "not checked: the environment state is unreadable"))
        else:
            checks.append(fn(ctx, state))
    checks += [_cache(ctx), _marketplace(ctx, ctx.settings.index_url)]
    host = _host_status(ctx)
    return checks + [_runtime(host), _host(host)]


CHECKS = {"local": _local, "langbot": _langbot}


def _environment_ok(ctx: Context, state: State) -> dict:
    problem = _unwritable(ctx.env.home)
    if problem:
        return _check("environment", False, problem, "Point --home (LBCTL_HOME) at a writable directory.")
    if not ctx.env.state_file.exists():
        return _check("environment", True, f"{ctx.env.home}: empty (no state.json yet)")
    count = len(state.plugins)
    return _check("environment", True, f"{ctx.env.home}: state schema {SCHEMA}, {_plural(count, 'plugin')}")


def _cache(ctx: Context) -> dict:
    if ctx.settings.no_cache:
        return _check("cache", True, "not used (--no-cache)")
    problem = _unwritable(ctx.settings.cache_dir)
    if problem:
        return _check("cache", False, problem, "Point --cache-dir (LBCTL_CACHE_DIR) at a writable directory, "
                      "or pass --no-cache.")
    return _check("cache", True, f"{ctx.settings.cache_dir}: writable")


def _unwritable(path: Path) -> str | None:
    """Why lbctl could not write `path` (or create it), or None: what a write would fail on, found without
    writing anything."""
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            return f"{existing} is a symbolic link to {os.readlink(existing)}, which does not exist"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (permission denied)"
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return f"{existing}: only {free // 1024} KiB free on its device"
    return None


def _packages(ctx: Context, state: State) -> dict:
    missing, unreadable, tampered = [], [], []
    for pid, record in sorted(state.plugins.items()):
        try:
            actual = sha256_file(ctx.env.package_path(record.sha256))
        except FileNotFoundError:
            missing.append(pid)
            continue
        except OSError:
            unreadable.append(pid)
            continue
        if actual != record.sha256:
            tampered.append(pid)
    problems = [f"{what}: {', '.join(ids)}" for what, ids in
                (("missing", missing), ("unreadable", unreadable), ("sha256 mismatch", tampered)) if ids]
    if problems:
        return _check("packages", False, "; ".join(problems),
                      "Reinstall them with `lbctl install --force ID`; `lbctl verify` lists them.")
    return _check("packages", True, f"{_plural(len(state.plugins), 'package')} present, sha256 verified")


def _config(ctx: Context, state: State) -> dict:
    missing, unreadable = [], []
    for pid, record in sorted(state.plugins.items()):
        try:
            schema = lbpkg.read_config_schema(ctx.env.package_path(record.sha256))
        except LbctlError:
            unreadable.append(pid)
            continue
        names = configschema.missing_required(schema, state.config.get(pid, {}))
        if names:
            missing.append(f"{pid} ({', '.join(names)})")
    if missing:
        return _check("config", False, f"required config missing: {'; '.join(missing)}",
                      "Set it with `lbctl config set ID KEY=VALUE`.")
    checked = len(state.plugins) - len(unreadable)
    detail = f"required config filled for {_plural(checked, 'plugin')}"
    return _check("config", True, detail + (f" (not checked: {', '.join(unreadable)})" if unreadable else ""))


def _dependencies(ctx: Context, state: State) -> dict:
    """Whether every plugin's requirements resolve, as wheels, from where the runtime will get them (pip's dry
    run; a diagnostic builds nothing, so it runs no package's code)."""
    from lbctl.ops import deps

    needed, refused = _requirements(ctx, state)
    if refused:
        return _check("dependencies", False, f"requirements refused: {'; '.join(refused)}",
                      "lbctl gives pip no direct reference, local path or ${...}: reinstall the plugin from a "
                      "version that requires released packages only, or uninstall it.")
    if not needed:
        return _check("dependencies", True, "no plugin needs more than langbot-plugin")
    try:
        kind, where = source = deps.configured_source()
        if kind == "index" and ctx.settings.offline:
            detail = f"not checked: offline (set {deps.WHEELHOUSE_ENV} to check a wheelhouse)"
            return _check("dependencies", True, detail)
        problems, packages = deps.unresolvable(needed, source, timeout=ctx.settings.timeout)
    except LbctlError as exc:
        return _check("dependencies", False, exc.message, exc.hint)
    if problems:
        return _check("dependencies", False, f"not resolvable as wheels from {kind} {where}: {'; '.join(problems)}",
                      "Add them to the wheelhouse with `lbctl deps download -d DIR` (--allow-sdist builds those "
                      "published only as source), or fix the requirement.")
    return _check("dependencies", True, f"requirements of {_plural(len(needed), 'plugin')} resolve from {kind} "
                  f"{where} ({_plural(packages, 'package')})")


def _requirements(ctx: Context, state: State) -> tuple[dict[str, list[str]], list[str]]:
    """What each plugin needs installed, and the plugins whose requirements lbctl refuses (in a package stored
    before it refused them), each with the line: those never reach pip."""
    found, refused = {}, []
    for pid, record in sorted(state.plugins.items()):
        try:
            needed = requirements.check(
                requirements.installable(lbpkg.read_requirements(ctx.env.package_path(record.sha256))))
        except requirements.RequirementRefused as exc:
            refused.append(f"{pid}: {exc.message}")
            continue
        except LbctlError:
            continue  # the packages check reports a missing or unreadable package
        if needed:
            found[pid] = needed
    return found, refused


def _marketplace(ctx: Context, index_url: str) -> dict:
    if ctx.settings.offline:
        return _check("marketplace", True, "offline")
    try:
        _, total = ctx.market_for(index_url).search("", page_size=1)
    except LbctlError as exc:
        return _check("marketplace", False, exc.message, exc.hint)
    return _check("marketplace", True, f"{index_url}: reachable from lbctl, {_plural(total, 'plugin')}")


def _host_status(ctx: Context) -> dict | Exception | None:
    """The live host's status, None when no socket exists, or the exception a stale socket gave."""
    from lbctl.runtime.client import HostClient, socket_path

    if not socket_path(ctx.env.home).exists():
        return None
    try:
        return HostClient(ctx.env.home, timeout=10.0).status()
    except Exception as exc:  # noqa: BLE001 - a stale socket or a dying host is a finding, not a crash
        return exc


def _runtime(host: dict | Exception | None) -> dict:
    try:
        version = importlib.metadata.version(RUNTIME_DIST)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None:
        return _check("runtime", True, f"{RUNTIME_DIST} {version} installed")
    if isinstance(host, dict) and host.get("host"):
        return _check("runtime", True, f"{RUNTIME_DIST} not installed here; the host runs runtime "
                      f"{host.get('runtime_version') or '(version unknown)'}")
    return _check("runtime", False, f"{RUNTIME_DIST} is not installed", RUNTIME_HINT)


def _host(host: dict | Exception | None) -> dict:
    if host is None or (isinstance(host, dict) and not host.get("host")):
        return _check("host", True, "no host running")
    if isinstance(host, Exception):
        reason = host.message if isinstance(host, LbctlError) else f"{type(host).__name__}: {host}"
        return _check("host", True, f"no host running (its socket does not answer: {reason})")
    plugins = host.get("plugins") or []
    failed = sorted(p["id"] for p in plugins if p.get("state") == "failed")
    detail = f"up, runtime {host.get('runtime_version') or '(version unknown)'}, {_plural(len(plugins), 'plugin')}"
    detail += f", failed: {', '.join(failed)}" if failed else ""
    return _check("host", True, f"{detail}; {_debug_port(host)}")


def _debug_port(host: dict) -> str:
    # langbot-plugin binds its debug WebSocket on every interface and lbctl cannot change that; its /healthz
    # there answers anyone (docs: README, security notes).
    port = host.get("debug_port")
    where = f"port {port}" if port else "a port chosen at start (see `ss -ltnp`)"
    return (f"the runtime's debug server listens on all interfaces, {where}: block it with a firewall "
            "or use a dedicated runtime (--connect)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

