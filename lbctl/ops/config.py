"""Plugin configuration: show, get, set, unset, edit, export, import. Values are validated against the
schema of the installed package; secrets never leave unmasked unless asked for."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Callable

from lbctl import configschema as schema_mod
from lbctl.context import Context
from lbctl.errors import ConfigInvalidError, NotFoundError, UsageError
from lbctl.fsutil import write_atomic
from lbctl.models import Action, Result
from lbctl.ops.query import installed_package, missing_config_warnings
from lbctl.ops import live

FILE_TYPES = ("file", "array[file]")
MAX_CONFIG_FILE = 10 * 1024 * 1024


def show(ctx: Context, plugin_id: str) -> Result:
    _, info, values = installed_package(ctx, plugin_id)
    rows = schema_mod.rows(info.config_schema, values)
    return Result("config show", "config", {"config": rows}, missing_config_warnings(info, values))


def get(ctx: Context, plugin_id: str, key: str, *, reveal: bool = False) -> Result:
    _, info, values = installed_package(ctx, plugin_id)
    item = _item(info.config_schema, key)
    if item is None and key not in values:
        raise NotFoundError(f"{plugin_id} has no config key {key!r}", plugin=plugin_id)
    value = values.get(key)
    if not reveal:
        value = schema_mod.mask_value(item or {"name": key}, value)
    return Result("config get", "value", {"key": key, "value": value})


def _item(schema: tuple[dict, ...], key: str) -> dict | None:
    return next((item for item in schema if item["name"] == key), None)


@live.applies
def set_values(ctx: Context, plugin_id: str, assignments: list[str], *, force: bool = False,
               read_stdin: Callable[[], str] = lambda: "") -> Result:
    if not assignments:
        raise UsageError("Give at least one KEY=VALUE")
    _, info, _ = installed_package(ctx, plugin_id)
    pairs = [_split(a) for a in assignments]
    if sum(raw == "-" for _, raw in pairs) > 1:
        raise UsageError("Only one KEY=- can read from stdin")
    updates = {key: _convert(ctx, info.config_schema, key, raw, force, read_stdin) for key, raw in pairs}
    return _commit(ctx, plugin_id, "config set", lambda values: {**values, **updates}, f"set {', '.join(updates)}")


def _split(assignment: str) -> tuple[str, str]:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"Expected KEY=VALUE, got {assignment.split('=')[0]!r}")
    return key, raw


def _convert(ctx: Context, schema, key: str, raw: str, force: bool, read_stdin) -> object:
    item = _item(schema, key)
    if raw == "-":
        raw = read_stdin().removesuffix("\n")
    if item is None:
        if not force:
            known = ", ".join(i["name"] for i in schema) or "none"
            raise ConfigInvalidError(f"Unknown config key {key!r} (known: {known})", hint="Pass --force to store it anyway.")
        return raw
    if schema_mod.type_of(item) in FILE_TYPES and raw.startswith("@"):
        return _store_files(ctx, item, raw)
    return schema_mod.convert(item, raw)


def _store_files(ctx: Context, item: dict, raw: str) -> object:
    refs = [_store_file(ctx, Path(part.lstrip("@")).expanduser()) for part in raw.split(",@")]
    return refs if schema_mod.type_of(item) == "array[file]" else refs[0]


def _store_file(ctx: Context, path: Path) -> dict:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"Cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_FILE:
        raise ConfigInvalidError(f"{path} is larger than {MAX_CONFIG_FILE} bytes")
    key = hashlib.sha256(data).hexdigest()
    target = ctx.env.files_dir / key
    if not target.exists():
        write_atomic(target, data, mode=0o600)
    return {"file_key": key, "mimetype": mimetypes.guess_type(path.name)[0] or "application/octet-stream"}


@live.applies
def unset(ctx: Context, plugin_id: str, keys: list[str]) -> Result:
    if not keys:
        raise UsageError("Name at least one KEY")
    _, _, values = installed_package(ctx, plugin_id)
    unknown = [k for k in keys if k not in values]
    if unknown:
        raise NotFoundError(f"{plugin_id} has no stored value for {', '.join(map(repr, unknown))}", plugin=plugin_id)
    return _commit(ctx, plugin_id, "config unset", lambda v: {k: x for k, x in v.items() if k not in keys},
                   f"unset {', '.join(keys)}")


@live.applies
def edit(ctx: Context, plugin_id: str, *, editor: Callable[[str], str]) -> Result:
    _, info, values = installed_package(ctx, plugin_id)
    text = schema_mod.to_toml(info.config_schema, values, include_secrets=False)
    edited = editor(text)
    if edited == text:
        return _actions("config edit", [])
    kept = {k: values[k] for k in schema_mod.toml_omitted(info.config_schema, values, include_secrets=False)}
    new = {**kept, **schema_mod.restore_secrets(values, schema_mod.from_toml(edited))}
    schema_mod.validate(info.config_schema, _only_known(info.config_schema, new, values))
    return _commit(ctx, plugin_id, "config edit", lambda _old: new, "edited")


def _only_known(schema, new: dict, old: dict) -> dict:
    # Keys already stored outside the schema (kept from an older version) may stay without --force.
    names = {i["name"] for i in schema}
    return {k: v for k, v in new.items() if k in names or k not in old}


def export(ctx: Context, plugin_id: str, *, include_secrets: bool = False) -> Result:
    _, info, values = installed_package(ctx, plugin_id)
    text = schema_mod.to_toml(info.config_schema, values, include_secrets=include_secrets)
    data = values if include_secrets else schema_mod.mask(info.config_schema, values)
    return Result("config export", "value", {"id": plugin_id, "config": data}, text=text)


@live.applies
def import_(ctx: Context, plugin_id: str, file: Path, *, replace: bool = False, force: bool = False) -> Result:
    _, info, _ = installed_package(ctx, plugin_id)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotFoundError(f"Cannot read {file}: {exc}") from None
    incoming = schema_mod.validate(info.config_schema, schema_mod.from_toml(text), force=force)
    merge = (lambda _old: incoming) if replace else (lambda old: {**old, **incoming})
    return _commit(ctx, plugin_id, "config import", merge, "replaced" if replace else "merged")


def _commit(ctx: Context, plugin_id: str, command: str, change: Callable[[dict], dict], reason: str) -> Result:
    with ctx.env.transaction() as state:
        record = state.plugins.get(plugin_id)
        if record is None:
            raise NotFoundError(f"{plugin_id} is not installed", plugin=plugin_id)
        old = state.config.get(plugin_id, {})
        state.config[plugin_id] = change(old)
        changed = state.config[plugin_id] != old
    action = Action(plugin_id, "config", "done" if changed else "skipped", to=record.version,
                    source=record.source, reason=reason if changed else "unchanged")
    return _actions(command, [action])


def _actions(command: str, actions: list[Action]) -> Result:
    return Result(command, "actions", {"actions": [a.to_json() for a in actions]})
