"""Plugins files (spec §5): parse and check them, freeze an environment into one, sync one into it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lbctl import configschema
from lbctl.context import Context
from lbctl.errors import LbctlError, PackageMismatchError, PluginsFileError
from lbctl.fsutil import sha256_file
from lbctl.models import Action, Record, Result
from lbctl.ops.install import Step, apply_step, confirm_switches, plan_step
from lbctl.ops.resolve import Candidate, map_all, read_local, stored_schema
from lbctl.state import State
from lbctl.ops import live

ENTRY_KEYS = {"id": str, "version": str, "sha256": str, "enabled": bool, "config": dict, "path": str, "url": str}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = re.compile(r"^\s*\[\[\s*plugin\s*\]\]")


@dataclass(frozen=True)
class Entry:
    id: str
    file: Path
    line: int
    version: str = ""
    sha256: str | None = None
    enabled: bool = True
    config: dict = field(default_factory=dict)
    path: Path | None = None
    url: str | None = None

    @property
    def source(self) -> str:
        return "local" if self.path else "url" if self.url else "marketplace"


# --- reading ---------------------------------------------------------------------------------------


def read(file: Path) -> list[Entry]:
    """Parse and check a plugins file; every defect is a PluginsFileError naming the line."""
    from lbctl import tomlio

    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PluginsFileError(f"No such plugins file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginsFileError(f"Cannot read {file}: {exc}") from None
    try:
        doc = tomlio.loads(text)
    except tomlio.TOMLDecodeError as exc:
        raise PluginsFileError(f"{file}: invalid TOML: {exc}") from None
    lines = text.splitlines()
    for key in doc:
        if key != "plugin":
            raise PluginsFileError(f"{file}:{_line_of(lines, key)}: unknown key {key!r} (expected [[plugin]] tables)")
    plugins = doc.get("plugin", [])
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        raise PluginsFileError(f"{file}: 'plugin' must be an array of tables ([[plugin]])")
    starts = [n for n, line in enumerate(lines) if _BLOCK.match(line)]
    entries = [_entry(file, lines, starts[i] if i < len(starts) else 0, raw) for i, raw in enumerate(plugins)]
    _check_unique(file, entries)
    return entries


def _line_of(lines: list[str], key: str, start: int = 0) -> int:
    pattern = re.compile(rf"^\s*(\[+\s*)?(plugin\.)?[\"']?{re.escape(key)}[\"']?\s*(=|\])")
    for n in range(start, len(lines)):
        if pattern.match(lines[n]):
            return n + 1
    return start + 1


def _entry(file: Path, lines: list[str], start: int, raw: dict) -> Entry:
    where = f"{file}:{start + 1}"
    for key, value in raw.items():
        if key not in ENTRY_KEYS:
            line = _line_of(lines, key, start)
            raise PluginsFileError(f"{file}:{line}: unknown key {key!r} (known: {', '.join(ENTRY_KEYS)})")
        if not isinstance(value, ENTRY_KEYS[key]) or (key != "enabled" and isinstance(value, bool)):
            line = _line_of(lines, key, start)
            raise PluginsFileError(f"{file}:{line}: {key} must be a {ENTRY_KEYS[key].__name__}")
    return _check_entry(file, where, start + 1, raw)


def _check_entry(file: Path, where: str, line: int, raw: dict) -> Entry:
    from lbctl.specs import marketplace_spec

    if "id" not in raw:
        raise PluginsFileError(f"{where}: a [[plugin]] needs an id")
    try:
        marketplace_spec(raw["id"], raw.get("version", ""))
    except LbctlError as exc:
        raise PluginsFileError(f"{where}: {exc.message}") from None
    if "path" in raw and "url" in raw:
        raise PluginsFileError(f"{where}: {raw['id']} has both path and url")
    sha = raw.get("sha256")
    if sha is not None and not SHA256.match(sha):
        raise PluginsFileError(f"{where}: sha256 of {raw['id']} must be 64 lowercase hex digits")
    path = (file.parent / raw["path"]).resolve() if "path" in raw else None
    if path is not None and not path.is_file():
        raise PluginsFileError(f"{where}: the package of {raw['id']} does not exist: {raw['path']}")
    return Entry(raw["id"], file, line, raw.get("version", ""), sha, raw.get("enabled", True), raw.get("config", {}),
                 path, raw.get("url"))


def _check_unique(file: Path, entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise PluginsFileError(f"{file}:{entry.line}: {entry.id} is listed twice")
        seen.add(entry.id)


# --- freeze ----------------------------------------------------------------------------------------


def freeze(ctx: Context, *, with_config: bool = False, include_secrets: bool = False) -> Result:
    state = ctx.env.load()
    rows = [_frozen(ctx, state, r, with_config, include_secrets) for r in sorted(state.plugins.values(), key=lambda r: r.id)]
    return Result("freeze", "freeze", {"plugins": rows}, text=_to_toml(rows))


def _frozen(ctx: Context, state: State, record: Record, with_config: bool, include_secrets: bool) -> dict:
    path = None
    if record.source == "local":
        origin = Path(record.origin or "")
        path = str(origin if _has_sha(origin, record.sha256) else ctx.env.package_path(record.sha256))
    config = None
    if with_config:
        # Keys outside the schema (stored with --force) would not pass `sync`'s validation: left out.
        schema = stored_schema(ctx, record.sha256) or ()
        names = {i["name"] for i in schema}
        config = {k: v for k, v in state.config.get(record.id, {}).items() if k in names}
        if not include_secrets:
            config = configschema.without_secrets(schema, config)
    return {"id": record.id, "version": record.version, "source": record.source, "sha256": record.sha256,
            "path": path, "url": record.origin if record.source == "url" else None, "enabled": record.enabled,
            "config": config}


def _has_sha(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False


def _to_toml(rows: list[dict]) -> str:
    from lbctl import tomlio

    plugins = []
    for row in rows:
        entry: dict[str, Any] = {"id": row["id"], "version": f"=={row['version']}", "sha256": row["sha256"]}
        for key in ("path", "url"):
            if row[key]:
                entry[key] = row[key]
        entry["enabled"] = row["enabled"]
        if row["config"]:
            entry["config"] = {k: v for k, v in row["config"].items() if v is not None}
        plugins.append(entry)
    header = "# Written by `lbctl freeze`; apply with `lbctl sync FILE`.\n"
    return header + (tomlio.dumps({"plugin": plugins}) if plugins else "")


# --- sync ------------------------------------------------------------------------------------------


def _satisfied(record: Record | None, entry: Entry) -> bool:
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


def _candidate(ctx: Context, entry: Entry) -> Candidate:
    from lbctl.ops import remote
    from lbctl.specs import marketplace_spec, parse_spec

    if entry.path is not None:
        cand = read_local(entry.path)
    elif entry.url is not None:
        cand = remote.resolve(ctx, parse_spec(entry.url))
    else:
        cand = remote.resolve(ctx, marketplace_spec(entry.id, entry.version))
    if cand.info.id != entry.id:
        raise PackageMismatchError(f"The package for {entry.id} is {cand.info.id}", plugin=entry.id)
    if entry.sha256 and cand.info.sha256 != entry.sha256:
        raise PackageMismatchError(
            f"{entry.id}: sha256 {cand.info.sha256} differs from the file's {entry.sha256}", plugin=entry.id)
    return cand


def _resolve_needed(ctx: Context, entries: list[Entry], state: State) -> dict[str, Candidate]:
    needed = [e for e in entries if not _satisfied(state.plugins.get(e.id), e)]
    return {e.id: cand for e, cand in zip(needed, map_all(needed, lambda e: _candidate(ctx, e)))}


def _config_for(ctx: Context, entry: Entry, cand: Candidate | None, record: Record | None, stored: dict) -> dict:
    if not entry.config or (cand is None and all(stored.get(k) == v for k, v in entry.config.items())):
        return {}  # nothing to change: stored values were validated when they were set
    schema = cand.info.config_schema if cand else (stored_schema(ctx, record.sha256) if record else None) or ()
    try:
        return configschema.validate(schema, entry.config)
    except LbctlError as exc:
        raise PluginsFileError(f"{entry.file}:{entry.line}: {entry.id}: {exc.message}") from None


@live.applies
def sync(ctx: Context, file: Path, *, prune: bool = False, dry_run: bool = False, command: str = "sync") -> Result:
    entries = read(file)
    before = ctx.env.load()
    candidates = _resolve_needed(ctx, entries, before)
    configs = {e.id: _config_for(ctx, e, candidates.get(e.id), before.plugins.get(e.id), before.config.get(e.id, {}))
               for e in entries}
    steps = [plan_step(before.plugins.get(pid), c, force=True) for pid, c in candidates.items()]
    if not dry_run:
        confirm_switches(ctx, steps)
    if dry_run:
        return _result(command, _plan(before, entries, steps, configs, prune, "planned"), [])
    warnings: list[str] = []
    with ctx.env.transaction() as state:
        actions = _plan(state, entries, steps, configs, prune, "done")
        for step in steps:
            warnings += apply_step(ctx, state, plan_step(state.plugins.get(step.candidate.info.id), step.candidate, force=True))
        _apply_settings(state, entries, configs)
        if prune:
            for pid in _pruned(state, entries):
                del state.plugins[pid]
    return _result(command, actions, warnings)


def _pruned(state: State, entries: list[Entry]) -> list[str]:
    listed = {e.id for e in entries}
    return sorted(pid for pid in state.plugins if pid not in listed)


def _apply_settings(state: State, entries: list[Entry], configs: dict[str, dict]) -> None:
    for entry in entries:
        record = state.plugins.get(entry.id)
        if record is None:
            continue
        if record.enabled != entry.enabled:
            state.plugins[entry.id] = replace(record, enabled=entry.enabled)
        if configs[entry.id]:
            state.config[entry.id] = {**state.config.get(entry.id, {}), **configs[entry.id]}


def _plan(state: State, entries: list[Entry], steps: list[Step], configs: dict, prune: bool, status: str) -> list[Action]:
    actions = [s.to_action(status) for s in steps]
    for entry in entries:
        record = state.plugins.get(entry.id)
        version = record.version if record else None
        enabled = record.enabled if record else True
        if enabled != entry.enabled:
            verb = "enable" if entry.enabled else "disable"
            actions.append(Action(entry.id, verb, status, to=version, source=entry.source))
        stored = state.config.get(entry.id, {})
        if configs[entry.id] and any(stored.get(k) != v for k, v in configs[entry.id].items()):
            actions.append(Action(entry.id, "config", status, to=version, source=entry.source,
                                  reason=f"set {', '.join(configs[entry.id])}"))
    if prune:
        actions += [Action(pid, "uninstall", status, from_=state.plugins[pid].version, source=state.plugins[pid].source,
                           reason="not in the plugins file") for pid in _pruned(state, entries)]
    return actions


def _result(command: str, actions: list[Action], warnings: list[str]) -> Result:
    return Result(command, "actions", {"actions": [a.to_json() for a in actions]}, tuple(warnings))
