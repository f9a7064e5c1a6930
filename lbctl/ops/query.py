"""Read-only use cases: list, show, inspect."""

from __future__ import annotations

from pathlib import Path

from lbctl import configschema, lbpkg
from lbctl.context import Context
from lbctl.errors import NotFoundError, NotInstalledError, StateCorruptError, UsageError
from lbctl.models import SOURCES, PackageInfo, Record, Result


def list_plugins(ctx: Context, *, source: str | None = None, outdated: bool = False) -> Result:
    if source is not None and source not in SOURCES:
        raise UsageError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}")
    state = ctx.env.load()
    records = [r for r in state.plugins.values() if source in (None, r.source)]
    latest: dict[str, str] = {}
    warnings: tuple[str, ...] = ()
    if outdated:
        from lbctl.ops import update

        report = update.outdated_report(ctx, state)
        latest = {row["id"]: row["latest"] for row in report.outdated}
        records = [r for r in records if r.id in latest]
        warnings = report.warnings
    live = _live_states(ctx)
    rows = [_list_row(r, live.get(r.id, "-"), latest.get(r.id)) for r in sorted(records, key=lambda r: r.id)]
    return Result("list", "list", {"plugins": rows}, warnings)


def _list_row(record: Record, status: str, latest: str | None) -> dict:
    return {
        "id": record.id, "version": record.version, "source": record.source, "enabled": record.enabled,
        "status": status, "sha256": record.sha256, "installed_at": record.installed_at, "latest": latest,
    }


def _live_states(ctx: Context) -> dict[str, str]:
    """Live plugin states from a running host, or {} when none is up (cheap: one socket probe)."""
    from lbctl.ops.live import host_up

    if not host_up(ctx):
        return {}
    try:
        from lbctl.runtime.client import HostClient

        return {p["id"]: p["state"] for p in HostClient(ctx.env.home).status()["plugins"]}
    except Exception:  # noqa: BLE001 - a stale socket or a dying host just means "no live state"
        return {}


def installed_package(ctx: Context, plugin_id: str) -> tuple[Record, PackageInfo, dict]:
    state = ctx.env.load()
    record = state.plugins.get(plugin_id)
    if record is None:
        raise NotInstalledError(f"{plugin_id} is not installed", hint="Run `lbctl list` to see what is.",
                                plugin=plugin_id)
    path = ctx.env.package_path(record.sha256)
    if not path.exists():
        raise StateCorruptError(f"The stored package of {plugin_id} is missing", plugin=plugin_id,
                                hint=f"Reinstall it: `lbctl install --force {record.spec or plugin_id}`.")
    info = lbpkg.read_file(path)
    return record, info, state.config.get(plugin_id, {})


def show(ctx: Context, plugin_id: str) -> Result:
    record, info, values = installed_package(ctx, plugin_id)
    view = package_view(info, values)
    view.update(source=record.source, enabled=record.enabled, installed_at=record.installed_at,
                spec=record.spec, origin=record.origin, status=_live_states(ctx).get(plugin_id, "-"))
    return Result("show", "plugin", {"plugin": view}, missing_config_warnings(info, values))


def inspect(ctx: Context, path: str) -> Result:
    file = Path(path).expanduser()
    if not file.exists():
        raise NotFoundError(f"No such file: {path}")
    info = lbpkg.read_file(file)
    view = package_view(info, configschema.defaults(info.config_schema))
    view.update(source=None, enabled=None, installed_at=None, spec=None, origin=str(file.resolve()))
    return Result("inspect", "plugin", {"plugin": view})


def package_view(info: PackageInfo, values: dict) -> dict:
    components = {kind: [c.to_json() for c in items] for kind, items in info.components_by_kind().items()}
    return {
        "id": info.id, "version": info.version, "label": info.label, "description": info.description,
        "author": info.author, "repository": info.repository, "sha256": info.sha256,
        "components": components, "config": configschema.rows(info.config_schema, values),
    }


def missing_config_warnings(info: PackageInfo, values: dict) -> tuple[str, ...]:
    missing = configschema.missing_required(info.config_schema, values)
    return tuple(f"{info.id}: required config {key!r} has no value" for key in missing)
