"""sync a plugins file into a target (its counterpart, freeze, is in ops/environment.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lbctl import configschema, plan, plugins_file
from lbctl.context import Context
from lbctl.errors import LbctlError, PluginsFileError
from lbctl.fsutil import sha256_file
from lbctl.models import Candidate, Record, Result
from lbctl.ops.common import apply, confirm_switches, planned
from lbctl.ops.fleet import each
from lbctl.plugins_file import Entry
from lbctl.resolve import map_all
from lbctl.targets.base import Target


def sync(ctx: Context, file: Path, *, prune: bool = False, dry_run: bool = False, check: bool = False,
         start: bool = True) -> Result:
    entries = plugins_file.read(file)
    return each(ctx, "sync", lambda target: sync_target(ctx, target, entries, prune=prune, dry_run=dry_run,
                                                        check=check, start=start, file=file))


def sync_target(ctx: Context, target: Target, entries: list[Entry], *, prune: bool, dry_run: bool,
                start: bool, check: bool = False, file: Path | None = None) -> Result:
    steps = file_steps(target, entries, target.records(), prune=prune)
    if check:
        return drift("sync", target, steps, file)
    if dry_run:
        return planned("sync", steps, target=target)
    confirm_switches(ctx, steps)
    return apply("sync", target, steps, start=start)


def drift(command: str, target: Target, steps: list[plan.Step], file: Path | None) -> Result:
    """`sync --check`: the plan, changing nothing, with `drift` in the data; drift is a check that found
    problems (exit 1, one error saying what differs), like `terraform plan -detailed-exitcode`."""
    changes = [s for s in steps if s.changes]
    result = planned(command, steps, target=target)
    data = {**result.data, "drift": bool(changes)}
    if not changes:
        return replace(result, data=data)
    ids = ", ".join(sorted({s.id for s in changes}))
    name = str(file) if file is not None else "the plugins file"
    error = {"code": "drift", "message": f"{target.name} differs from {name}: {len(changes)} planned "
                                         f"change{'s' if len(changes) != 1 else ''} ({ids})",
             "hint": "Run the same `lbctl sync` without --check to apply the plan.", "plugin": None}
    return replace(result, data=data, errors=(error,), exit_code=1)


def file_steps(target: Target, entries: list[Entry], records: dict[str, Record], *, prune: bool) -> list[plan.Step]:
    """The plan that makes `target` match the entries; a no-op plan reads no package and uses no network."""
    needed = [e for e in entries if not satisfied(records.get(e.id), e)]
    resolver = target.resolver
    candidates = dict(zip([e.id for e in needed], map_all(needed, resolver.entry)))
    configs = {e.id: _config_values(target, e, candidates.get(e.id)) for e in entries}
    return plan.sync(records, entries, candidates, configs, prune=prune)


def satisfied(record: Record | None, entry: Entry) -> bool:
    """The installed package already is what the entry asks for (no resolution, no network)."""
    if record is None or record.source != entry.source:
        return False
    if entry.sha256:
        return record.sha256 == entry.sha256
    if entry.path is not None:
        return _has_sha(entry.path, record.sha256)
    if entry.url is not None:
        return record.origin == entry.url
    from lbctl.specs import marketplace_spec, select_version

    try:
        select_version([record.version], marketplace_spec(entry.id, entry.version))
        return True
    except LbctlError:
        return False


def _has_sha(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False


def _config_values(target: Target, entry: Entry, cand: Candidate | None) -> dict | None:
    """The validated values to set for `entry`, or None when the target already holds them."""
    if not entry.config or (cand is None and target.config_satisfied(entry.id, entry.config)):
        return None
    schema = cand.info.config_schema if cand else target.schema(entry.id)
    try:
        values = configschema.validate(schema, entry.config)
    except LbctlError as exc:
        raise PluginsFileError(f"{entry.where}: {entry.id}: {exc.message}") from None
    return None if target.config_satisfied(entry.id, values) else values
