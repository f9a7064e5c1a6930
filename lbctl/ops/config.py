"""Plugin configuration: show, get, set, unset, edit, export, import, on any target. Values are validated
against the installed plugin's schema; secrets never leave unmasked unless asked for."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Callable

from lbctl import configschema as schema_mod
from lbctl import plan
from lbctl.context import Context
from lbctl.errors import ConfigInvalidError, NotFoundError, UsageError
from lbctl.fsutil import read_regular_file, read_text_file
from lbctl.models import Action, Result
from lbctl.ops.common import actions_result, apply, on
from lbctl.targets import open_one
from lbctl.ops.query import missing_config_warnings
from lbctl.targets.base import Target

FILE_TYPES = ("file", "array[file]")
MAX_CONFIG_FILE = 10 * 1024 * 1024


def _load(ctx: Context, plugin_id: str) -> tuple[Target, str, tuple[dict, ...], dict]:
    target = open_one(ctx)
    plugin_id = target.record(plugin_id).id
    return target, plugin_id, target.schema(plugin_id), target.config(plugin_id)


def show(ctx: Context, plugin_id: str) -> Result:
    target, plugin_id, schema, values = _load(ctx, plugin_id)
    rows = schema_mod.rows(schema, values)
    warnings = missing_config_warnings(plugin_id, schema, values)
    return on(target, Result("config show", "config", {"id": plugin_id, "config": rows}, warnings))


def get(ctx: Context, plugin_id: str, key: str, *, reveal: bool = False) -> Result:
    """The key's effective value: the stored one, else the schema's default (`default_used`)."""
    target, plugin_id, schema, values = _load(ctx, plugin_id)
    item = _item(schema, key)
    if item is None and key not in values:
        raise NotFoundError(f"{plugin_id} has no config key {key!r}", plugin=plugin_id)
    value, default_used = schema_mod.effective(item, values) if item else (values.get(key), False)
    if not reveal:
        value = schema_mod.mask_value(item or {"name": key}, value)
    return on(target, Result("config get", "value", {"key": key, "value": value, "default_used": default_used}))


def _item(schema: tuple[dict, ...], key: str) -> dict | None:
    return next((item for item in schema if item["name"] == key), None)


def set_values(ctx: Context, plugin_id: str, assignments: list[str], *, force: bool = False,
               read_stdin: Callable[[], str] = lambda: "", start: bool = True) -> Result:
    if not assignments:
        raise UsageError("Give at least one KEY=VALUE")
    target, plugin_id, schema, _ = _load(ctx, plugin_id)
    pairs = [_split(a) for a in assignments]
    if sum(raw == "-" for _, raw in pairs) > 1:
        raise UsageError("Only one KEY=- can read from stdin")
    updates = {key: _convert(target, schema, key, raw, force, read_stdin) for key, raw in pairs}
    return _commit(target, plugin_id, "config set", updates, f"set {', '.join(updates)}", start=start)


def _split(assignment: str) -> tuple[str, str]:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"Expected KEY=VALUE, got {assignment.split('=')[0]!r}")
    return key, raw


def _convert(target: Target, schema, key: str, raw: str, force: bool, read_stdin) -> object:
    item = _item(schema, key)
    if raw == "-":
        raw = read_stdin().removesuffix("\n")
    if item is None:
        if not force:
            known = ", ".join(i["name"] for i in schema) or "none"
            raise ConfigInvalidError(f"Unknown config key {key!r} (known: {known})", hint="Pass --force to store it anyway.")
        return schema_mod.check_size(key, raw)
    if schema_mod.type_of(item) in FILE_TYPES and raw.startswith("@"):
        refs = [_store_file(target, Path(part.lstrip("@")).expanduser()) for part in raw.split(",@")]
        return refs if schema_mod.type_of(item) == "array[file]" else refs[0]
    return schema_mod.convert(item, raw)


def _store_file(target: Target, path: Path) -> dict:
    data = read_regular_file(path, MAX_CONFIG_FILE, "file")  # not a FIFO or a device: they hang or never end
    return target.store_file(path, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def unset(ctx: Context, plugin_id: str, keys: list[str], *, start: bool = True) -> Result:
    if not keys:
        raise UsageError("Name at least one KEY")
    target, plugin_id, _, values = _load(ctx, plugin_id)
    unknown = [k for k in keys if k not in values]
    if unknown:
        raise NotFoundError(f"{plugin_id} has no stored value for {', '.join(map(repr, unknown))}", plugin=plugin_id)
    remaining = {k: v for k, v in values.items() if k not in keys}
    return _commit(target, plugin_id, "config unset", remaining, f"unset {', '.join(keys)}", replace=True,
                   start=start)


def edit(ctx: Context, plugin_id: str, *, editor: Callable[[str], str], reopen: bool = False,
         start: bool = True) -> Result:
    """Edit the config as TOML. With `reopen` (a terminal), an invalid edit goes back to the editor with the
    reason on top, until it is valid or saved unchanged; otherwise it is refused and nothing is written."""
    target, plugin_id, schema, values = _load(ctx, plugin_id)
    text = schema_mod.to_toml(schema, values, include_secrets=False)
    shown = text
    while True:
        edited = editor(shown)
        if edited in (text, shown) and shown == text:
            return on(target, actions_result("config edit", []))
        try:
            new = _edited_values(schema, values, _without_error_note(edited))
            break
        except ConfigInvalidError as exc:
            if not reopen or edited == shown:
                raise
            shown = f"{ERROR_NOTE}{exc.message}\n{_without_error_note(edited)}"
    return _commit(target, plugin_id, "config edit", new, "edited", replace=True, start=start)


ERROR_NOTE = "# lbctl: this edit was not saved: "


def _without_error_note(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(ERROR_NOTE))


def _edited_values(schema: tuple[dict, ...], values: dict, edited: str) -> dict:
    kept = {k: values[k] for k in schema_mod.toml_omitted(schema, values, include_secrets=False)}
    new = {**kept, **schema_mod.restore_secrets(values, schema_mod.from_toml(edited))}
    schema_mod.validate(schema, _only_known(schema, new, values))
    return new


def _only_known(schema, new: dict, old: dict) -> dict:
    # Keys already stored outside the schema (kept from an older version) may stay without --force.
    names = {i["name"] for i in schema}
    return {k: v for k, v in new.items() if k in names or k not in old}


def export(ctx: Context, plugin_id: str, *, include_secrets: bool = False) -> Result:
    target, plugin_id, schema, values = _load(ctx, plugin_id)
    text = schema_mod.to_toml(schema, values, include_secrets=include_secrets)
    data = values if include_secrets else schema_mod.mask(schema, values)
    return on(target, Result("config export", "value", {"id": plugin_id, "config": data}, text=text))


def import_(ctx: Context, plugin_id: str, file: Path, *, replace: bool = False, force: bool = False,
            start: bool = True) -> Result:
    target, plugin_id, schema, _ = _load(ctx, plugin_id)
    text = read_text_file(file, MAX_CONFIG_FILE, "TOML file")
    incoming = schema_mod.validate(schema, schema_mod.from_toml(text), force=force)
    return _commit(target, plugin_id, "config import", incoming, "replaced" if replace else "merged",
                   replace=replace, start=start)


def _commit(target: Target, plugin_id: str, command: str, values: dict, reason: str, *, replace: bool = False,
            start: bool = True) -> Result:
    record = target.record(plugin_id)
    current = target.config(plugin_id)
    after = values if replace else {**current, **values}
    if after == current:
        return on(target, actions_result(command, [Action(plugin_id, "config", "skipped", to=record.version,
                                                          source=record.source, reason="unchanged")]))
    return apply(command, target, [plan.config_step(record, values, reason, replace=replace)], start=start)
