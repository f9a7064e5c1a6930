"""Plugins files (spec §5): parse and check them, and write one from frozen rows. No network, no target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbctl.errors import LbctlError, NotFoundError, PluginsFileError
from lbctl.fsutil import read_text_file

ENTRY_KEYS = {"id": str, "version": str, "sha256": str, "enabled": bool, "config": dict, "path": str, "url": str,
              "pinned": bool, "pin_reason": str}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILE_BYTES = 16 * 1024 * 1024
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
    pinned: bool = False
    pin_reason: str | None = None

    @property
    def source(self) -> str:
        return "local" if self.path else "url" if self.url else "marketplace"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def read(file: Path) -> list[Entry]:
    """Parse and check a plugins file; every defect is a PluginsFileError naming the line."""
    from lbctl import tomlio

    try:
        text = read_text_file(file, MAX_FILE_BYTES, "plugins file")
    except NotFoundError:
        raise NotFoundError(f"No such plugins file: {file}") from None  # not found is 5, as for any file
    except LbctlError as exc:
        raise PluginsFileError(exc.message, hint=exc.hint) from None
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
    for key, value in raw.items():
        if key not in ENTRY_KEYS:
            line = _line_of(lines, key, start)
            raise PluginsFileError(f"{file}:{line}: unknown key {key!r} (known: {', '.join(ENTRY_KEYS)})")
        expected = ENTRY_KEYS[key]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            line = _line_of(lines, key, start)
            raise PluginsFileError(f"{file}:{line}: {key} must be a {expected.__name__}")
    return _check_entry(file, start + 1, raw)


def _check_entry(file: Path, line: int, raw: dict) -> Entry:
    from lbctl.specs import marketplace_spec

    where = f"{file}:{line}"
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
    # A missing package is only an error when it cannot be found by its sha256 either (checked when needed).
    if path is not None and not path.is_file() and sha is None:
        raise NotFoundError(f"{where}: the package of {raw['id']} does not exist: {raw['path']}", plugin=raw["id"])
    if "pin_reason" in raw and not raw.get("pinned"):
        raise PluginsFileError(f"{where}: {raw['id']} has a pin_reason but is not pinned (add pinned = true)")
    return Entry(raw["id"], file, line, raw.get("version", ""), sha, raw.get("enabled", True), raw.get("config", {}),
                 path, raw.get("url"), raw.get("pinned", False), raw.get("pin_reason"))


def _check_unique(file: Path, entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise PluginsFileError(f"{file}:{entry.line}: {entry.id} is listed twice")
        seen.add(entry.id)


def dumps(rows: list[dict], header: str = "") -> str:
    """A plugins file from `freeze` rows ({id, version, sha256, path, url, enabled, config, pinned, pin_reason})."""
    from lbctl import tomlio

    plugins = []
    for row in rows:
        entry: dict[str, Any] = {"id": row["id"], "version": f"=={row['version']}"}
        if row.get("sha256"):
            entry["sha256"] = row["sha256"]
        for key in ("path", "url"):
            if row.get(key):
                entry[key] = row[key]
        entry["enabled"] = row["enabled"]
        if row.get("pinned"):
            entry["pinned"] = True
            if row.get("pin_reason"):
                entry["pin_reason"] = row["pin_reason"]
        if row.get("config"):
            entry["config"] = {k: v for k, v in row["config"].items() if v is not None}
        plugins.append(entry)
    header = header or "# Written by `lbctl freeze`; apply with `lbctl sync FILE`.\n"
    return header + (tomlio.dumps({"plugin": plugins}) if plugins else "")
