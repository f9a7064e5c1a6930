"""Read-only use cases: list, show, inspect."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lbctl.context import Context
from lbctl.errors import UsageError
from lbctl.models import SOURCES, PackageInfo, Record, Result
from lbctl.targets import open_one
from lbctl.ops.common import on
from lbctl.ops.fleet import each
from lbctl.targets.base import Target


def list_plugins(ctx: Context, *, source: str | None = None, outdated: bool = False) -> Result:
    if source is not None and source not in (*SOURCES, "github"):
        raise UsageError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}, github")
    return each(ctx, "list", lambda target: _list(target, source, outdated))


def _list(target: Target, source: str | None, outdated: bool) -> Result:
    records = target.records()
    chosen = [r for r in records.values() if source in (None, r.source)]
    latest: dict[str, str] = {}
    warnings: tuple[str, ...] = ()
    if outdated:
        from lbctl.ops.update import outdated_report

        report = outdated_report(target, records)
        latest = {row["id"]: row["latest"] for row in report.outdated}
        chosen = [r for r in chosen if r.id in latest]
        warnings = report.warnings
    live = target.live()
    rows = [_list_row(r, live.get(r.id, "-"), latest.get(r.id)) for r in sorted(chosen, key=lambda r: r.id)]
    return on(target, Result("list", "list", {"plugins": rows}, warnings))


def _list_row(record: Record, status: str, latest: str | None) -> dict:
    return {
        "id": record.id, "version": record.version, "source": record.source, "enabled": record.enabled,
        "status": status, "sha256": record.sha256, "installed_at": record.installed_at, "latest": latest,
        "pinned": record.pinned,
    }


def show(ctx: Context, plugin_id: str) -> Result:
    target = open_one(ctx)
    record = target.record(plugin_id)
    plugin_id = record.id
    info = target.package(plugin_id)
    values = target.config(plugin_id)
    view = package_view(info, values)
    requirements = _requirements(target, record, info)
    view.update(source=record.source, enabled=record.enabled, installed_at=record.installed_at, spec=record.spec,
                origin=record.origin, status=target.live().get(plugin_id, "-"), pinned=record.pinned,
                target=target.name, requirements=requirements or [], requirements_known=requirements is not None)
    warnings = missing_config_warnings(plugin_id, info.config_schema, values)
    return replace(Result("show", "plugin", {"plugin": view}, warnings), target=target.name)


def _requirements(target: Target, record: Record, info: PackageInfo) -> list[str] | None:
    """The package's requirements. A target that reports a manifest but not the package (LangBot: size 0) has
    them read from lbctl's copy of the package; None when there is none (unknown, which is not "none")."""
    if info.requirements or info.size:
        return list(info.requirements)
    found = target.package_file(record)
    if found is None:
        return None
    from lbctl import lbpkg
    from lbctl.errors import LbctlError

    try:
        return list(lbpkg.read_file(found, record.sha256 or None).requirements)
    except (LbctlError, OSError):
        return None


def inspect(ctx: Context, path: str) -> Result:
    from lbctl.resolve import read_local

    cand = read_local(Path(path).expanduser())
    view = package_view(cand.info, {})  # nothing is stored yet: every value shown is the default
    view.update(source=None, enabled=None, installed_at=None, spec=None, origin=cand.origin)
    return Result("inspect", "plugin", {"plugin": view})


def package_view(info: PackageInfo, values: dict) -> dict:
    from lbctl import configschema

    components = {kind: [c.to_json() for c in items] for kind, items in info.components_by_kind().items()}
    return {
        "id": info.id, "version": info.version, "label": info.label, "description": info.description,
        "author": info.author, "repository": info.repository, "sha256": info.sha256,
        "components": components, "config": configschema.rows(info.config_schema, values),
        "requirements": list(info.requirements), "requirements_known": True,
    }


def missing_config_warnings(plugin_id: str, schema: tuple[dict, ...], values: dict) -> tuple[str, ...]:
    from lbctl import configschema

    missing = [row["name"] for row in configschema.rows(schema, values) if row["missing"]]  # defaults count
    return tuple(f"{plugin_id}: required config {key!r} has no value" for key in missing)
