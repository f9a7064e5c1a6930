"""The only place that prints: results and errors become tables on stdout, talk on stderr, or one JSON
document on stdout.

Everything printed as text goes through `sanitize`: labels, descriptions, marketplace records, config values,
plugin output and log lines come from outside, so their control characters are shown escaped (a terminal
would obey them) and table cells are plain text, never rich markup.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from typing import Any, Callable, TextIO

from lbctl.errors import LbctlError
from lbctl.models import Result

LOCAL = "local"

_PAST = {"install": "installed", "reinstall": "reinstalled", "update": "updated", "downgrade": "downgraded",
         "uninstall": "uninstalled", "purge": "purged", "config": "configured", "enable": "enabled",
         "disable": "disabled", "skip": "skipped", "pin": "pinned", "unpin": "unpinned",
         "rollback": "rolled back"}


# C0 and C1 controls but tab and newline, DEL, and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str) -> str:
    """`text` with every control character shown as its escape (ESC as \\u001b, as JSON and TOML write it: a
    TOML file printed by `freeze` or `config export` stays valid and keeps its values)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Renderer:
    def __init__(self, *, json_output: bool = False, quiet: int = 0, verbose: int = 0, color: bool = True,
                 stdout: TextIO | None = None, stderr: TextIO | None = None, err_color: bool = False):
        self.json = json_output
        self.level = verbose - quiet
        self.color = color
        self.err_color = err_color  # stderr is a terminal and colour is allowed
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._consoles: dict[str, Any] = {}
        self._tty: bool | None = None
        self.where: str | None = None  # the target a single result acted on, when it is not `local`
        self.heading: str | None = None  # the same, for table titles (a fleet section's own header names it)

    def console(self, which: str = "out"):
        if which not in self._consoles:
            from rich.console import Console

            stream = self.stdout if which == "out" else self.stderr
            # Piped, a table is as wide as its longest row: nothing wraps or is cut (spec §4).
            width = None if which == "err" or self.tty else 1 << 20
            self._consoles[which] = Console(file=stream, no_color=not self.color, highlight=False, width=width,
                                            color_system="auto" if self.color else None, soft_wrap=which == "err")
        return self._consoles[which]

    # talk on stderr -------------------------------------------------------------------------------
    def note(self, message: str, *, level: int = 0) -> None:
        if self.level >= level and not (self.json and level > 0):
            self.stderr.write(sanitize(message) + "\n")
            self.stderr.flush()

    def paint(self, text: str, colour: str, *, err: bool = True) -> str:
        """`text` in a colour (red, yellow, green) when that stream is a terminal that takes colour."""
        codes = {"red": "31", "yellow": "33", "green": "32"}
        on = self.err_color if err else self.color
        return f"\x1b[{codes[colour]}m{text}\x1b[0m" if on else text

    def warn(self, message: str) -> None:
        if self.level >= -1:
            self.stderr.write(f"{self.paint('warning:', 'yellow')} {sanitize(message)}\n")

    # results --------------------------------------------------------------------------------------
    def result(self, result: Result) -> int:
        if self.json:
            self._envelope(result.command, result.status, result.exit_code, result.data,
                           list(result.warnings), list(result.errors))
            return result.exit_code
        if result.parts:
            fleet(self, result)
        else:
            self._body(result, section=False)
        self.stdout.flush()
        return result.exit_code

    def _body(self, result: Result, *, section: bool) -> None:
        prefix = f"{result.target}: " if section else ""
        self.where = result.target if result.target not in (None, LOCAL) else None
        self.heading = None if section else self.where
        if section:
            self.plain(f"== {result.target} ==")
        for warning in result.warnings:
            self.warn(prefix + warning)
        if result.text is not None:
            self.stdout.write(sanitize(result.text))
        elif result.data is not None:
            TABLES.get(result.kind, _generic)(self, result.data)
        for error in result.errors:
            self._error_line({**error, "message": prefix + error["message"]})
        if section:
            self.plain()

    def error(self, error: LbctlError, command: str) -> int:
        """An error; when the command had changed things first (`error.partial`, a Result), those actions too."""
        code = int(error.exit_code)
        partial: Result | None = getattr(error, "partial", None)
        first = error.to_json()
        others = [e for e in (partial.errors if partial else ()) if e.get("message") != first["message"]]
        if self.json:
            self._envelope(command, "error", code, partial.data if partial else None,
                           list(partial.warnings) if partial else [], [first, *others])
            return code
        if partial is not None:
            shown = replace(partial, errors=tuple(others))  # the target it acted on, or a fleet's parts, kept
            fleet(self, shown) if shown.parts else self._body(shown, section=False)
            self.stdout.flush()
        self._error_line(first)
        return code

    def traceback(self, exc: BaseException) -> None:
        """The traceback of `exc` on stderr (--debug), before the error itself is rendered."""
        import traceback

        self.stderr.write("".join(traceback.format_exception(exc)))
        self.stderr.flush()

    def _error_line(self, error: dict) -> None:
        self.stderr.write(f"{self.paint('error:', 'red')} {sanitize(error['message'])}\n")
        if error.get("hint"):
            self.stderr.write(f"hint: {sanitize(error['hint'])}\n")
        self.stderr.flush()

    def _envelope(self, command: str, status: str, code: int, data: Any, warnings: list, errors: list) -> None:
        doc = {"lbctl": 1, "command": command, "status": status, "exit_code": code, "data": data,
               "warnings": warnings, "errors": errors}
        self.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()

    def event(self, event: dict) -> None:
        """Narration of a long-running command (the runtime host) on stderr."""
        if self.json:
            self.stderr.write(json.dumps(event, ensure_ascii=False) + "\n")
        elif event.get("event") == "plugin":
            error = f": {event['error']}" if event.get("error") else ""
            self.note(f"{event['id']}: {event['state']}{error}")
        elif event.get("event") in ("runtime", "host"):
            detail = ", ".join(f"{k} {v}" for k, v in event.items() if k not in ("event", "state") and v is not None)
            self.note(f"{event['event']} {event['state']}" + (f" ({detail})" if detail else ""))
        self.stderr.flush()

    def stream(self, lines) -> None:
        """Print log lines as they come (logs -f) until interrupted."""
        for line in lines:
            if self.json:
                self.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            else:
                self.stdout.write(sanitize(_log_line(line)) + "\n")
            self.stdout.flush()

    def setup_logging(self) -> None:
        import logging

        class SanitizingFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return sanitize(super().format(record))

        level = logging.WARNING - 10 * self.level
        handler = logging.StreamHandler(self.stderr)
        handler.setFormatter(SanitizingFormatter("%(levelname).1s %(name)s: %(message)s"))
        logging.basicConfig(level=max(level, logging.DEBUG), handlers=[handler])

    def table(self, columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
        cells = [["-" if v is None else self._cell(str(v)) for v in row] for row in rows]
        if self._simple_table(columns, cells, title):
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
        for row in cells:
            table.add_row(*map(Text, row))
        self.console().print(table)

    def _cell(self, text: str) -> str:
        """A cell's text: sanitized, and piped on one line (a newline or tab inside a value shown escaped)."""
        text = sanitize(text)
        return text if self.tty else text.replace("\n", "\\n").replace("\t", "\\t")

    def short(self, value: Any, width: int = 60) -> str:
        """A value as cell text, cut to `width` on a terminal; piped, whole (output is for grep and awk)."""
        if value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text if len(text) <= width or not self.tty else text[: width - 3] + "..."

    def _simple_table(self, columns: list[str], cells: list[list[str]], title: str | None) -> bool:
        """Write the table rich would draw when every cell is printable ASCII and, on a terminal, it fits the
        width rich would use (no wrapping, no wide characters); False otherwise. rich takes ~250 ms for 500 rows.
        Piped, a table is never wrapped: it is as wide as its longest row."""
        widths = [max(map(len, column)) for column in zip(columns, *cells)]
        total = sum(widths) + 3 * len(widths) - 1
        text = "".join(columns) + "".join(map("".join, cells)) + (title or "")
        too_wide = total > _table_width() and self.tty
        if not (text.isascii() and text.isprintable()) or too_wide or len(title or "") > total:
            return False
        line = lambda row: " " + "   ".join(c.ljust(w) for c, w in zip(row, widths)) + " \n"  # noqa: E731
        header = line(columns)
        if self.color and os.environ.get("TERM", "").lower() not in ("dumb", "unknown"):
            header = f" \x1b[1m{header[1:-2]}\x1b[0m \n"
        out = [title.ljust(total) + "\n"] if title else []
        out += [" " * total + "\n", header, " " + "\u2500" * (total - 2) + " \n", *map(line, cells), " " * total + "\n"]
        self.stdout.write("".join(out))
        return True

    def plain(self, line: str = "", *, prefix: str = "") -> None:
        """One line of outside text (sanitized), after a `prefix` of lbctl's own (which may be painted)."""
        self.stdout.write(prefix + sanitize(line) + "\n")

    @property
    def tty(self) -> bool:
        if self._tty is None:
            self._tty = self.stdout.isatty()  # asked once per cell of a table: one system call, not thousands
        return self._tty


def _table_width() -> int:
    """The width rich's Console would give a table, found as rich finds it (COLUMNS, else the terminal's)."""
    columns = os.environ.get("COLUMNS", "")
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return 80
    if columns.isdigit():
        return int(columns)
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _generic(r: Renderer, data: Any) -> None:
    r.plain(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _actions(r: Renderer, data: dict) -> None:
    actions = data["actions"]
    if not actions:
        r.note("Nothing to do" + (f" on {r.where}." if r.where else "."))
    for a in actions:
        r.plain(action_line(a, r.where))


def action_line(a: dict, where: str | None = None) -> str:
    """`installed acme/echo 1.0.0 (marketplace)`; on another target than `local` the line names it, and the
    source is labelled so that it never reads as the target (`uninstalled acme/echo 1.0.0 from prod (source:
    local)`)."""
    version = a["to"] or a["from"] or ""
    if a["from"] and a["to"] and a["from"] != a["to"]:
        version = f"{a['from']} -> {a['to']}"
    verb = _PAST.get(a["action"], a["action"])
    if a["status"] == "planned":
        verb = f"would {a['action']}"
    elif a["status"] == "failed":
        verb = f"failed to {a['action']}"
    elif a["status"] == "unknown":  # the target could not be asked whether it happened
        verb = f"maybe {_PAST.get(a['action'], a['action'])}"
    if where is None:
        place, source = "", f" ({a['source']})" if a.get("source") else ""
    else:
        place = f" {'from' if a['action'] in ('uninstall', 'purge') else 'on'} {where}"
        source = f" (source: {a['source']})" if a.get("source") else ""
    reason = f": {a['reason']}" if a.get("reason") else ""
    return f"{verb} {a['id']} {version}{place}{source}{reason}".replace("  ", " ").rstrip()


def _list(r: Renderer, data: dict) -> None:
    plugins = data["plugins"]
    if not r.tty:
        if r.heading:
            r.note(f"Plugins on {r.heading}:")  # stdout stays one plain line per plugin, for scripts
        for p in plugins:
            r.plain(f"{p['id']} {p['version']} {p['source']}")
        return
    if not plugins:
        r.note("No plugins installed" + (f" on {r.where}." if r.where else "."))
        return
    rows = [[p["id"], p["version"], p["source"], "yes" if p["enabled"] else "no", p["status"], p["latest"] or ""]
            for p in plugins]
    r.table(["ID", "VERSION", "SOURCE", "ENABLED", "STATUS", "UPDATE"], rows,
            title=f"Plugins on {r.heading}" if r.heading else None)


def _config_rows(r: Renderer, rows: list[dict], title: str | None = None) -> None:
    if not rows:
        r.plain("(no config items)")
        return
    table = []
    for row in rows:
        flag = " (missing)" if row.get("missing") else ""
        value = "" if row["value"] is None else r.short(row["value"])
        if row.get("default_used"):
            value += " (default)"
        kind = row["type"] or "?"
        if row.get("options"):
            kind += ": " + "|".join(row["options"])
        table.append([row["name"], r.short(kind, 40), "yes" if row["required"] else "no",
                      r.short(row["default"]), value + flag])
    r.table(["NAME", "TYPE", "REQUIRED", "DEFAULT", "VALUE"], table, title=title)


def _plugin(r: Renderer, data: dict) -> None:
    p = data["plugin"]
    fields = [("Target", r.heading), ("Id", p["id"]), ("Version", p["version"]), ("Label", p["label"]),
              ("Description", p["description"]), ("Author", p.get("author")), ("Repository", p.get("repository")),
              ("Source", p.get("source")), ("Spec", p.get("spec")), ("Origin", p.get("origin")),
              ("Sha256", p["sha256"]), ("Installed", p.get("installed_at")), ("Enabled", p.get("enabled")),
              ("Status", p.get("status"))]
    for key, value in fields:
        if value not in (None, ""):
            r.plain(f"{key + ':':<13}{value}")
    for kind, items in p["components"].items():
        r.plain(f"\n{kind}s:")
        for item in items:
            r.plain(f"  {item['name']}: {item['description']}".rstrip(": "))
            for pname, schema in ((item.get("parameters") or {}).get("properties") or {}).items():
                ptype = schema.get("type", "") if isinstance(schema, dict) else ""
                pdesc = schema.get("description", "") if isinstance(schema, dict) else ""
                r.plain(f"    - {pname} ({ptype}) {pdesc}".rstrip())
    _requirements(r, p.get("requirements") or [], p.get("requirements_known", True))
    r.plain()
    _config_rows(r, p["config"], title="Config")


def _requirements(r: Renderer, requirements: list[str], known: bool) -> None:
    if not known:
        r.plain("\nRequirements: unknown (the target does not report them and lbctl holds no copy of the package)")
        return
    if not requirements:
        r.plain("\nRequirements: none")
        return
    r.plain("\nRequirements:")
    for line in requirements:
        r.plain(f"  {line}")


def _config(r: Renderer, data: dict) -> None:
    title = f"Config of {data.get('id') or 'the plugin'} on {r.heading}" if r.heading else None
    _config_rows(r, data["config"], title=title)


def _value(r: Renderer, data: dict) -> None:
    value = data["value"]
    r.plain(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _exit_codes(r: Renderer, data: dict) -> None:
    r.table(["CODE", "MEANING"], [[row["code"], row["meaning"]] for row in data["exit_codes"]])


def _summary_actions(r: Renderer, data: dict) -> None:
    _actions(r, data)
    on = f" on {r.where}" if r.where else ""
    if data.get("summary") and data["actions"]:
        r.note(data["summary"].capitalize() + on + ".")
    for live in data.get("live", []):
        error = f" ({live['error']})" if live.get("error") else ""
        r.note(f"{live['id']} is {live['state']}{on}{error}")


def _log_line(line: dict) -> str:
    plugin = f"[{line['plugin']}] " if line.get("plugin") else ""
    return f"{line.get('ts', '')} {line.get('level', '')} {plugin}{line.get('text', '')}".strip()


def _logs(r: Renderer, data: dict) -> None:
    if r.heading:
        r.note(f"Logs on {r.heading}:")  # stdout stays the log lines themselves
    for line in data["lines"]:
        r.plain(_log_line(line))


def _runtime_status(r: Renderer, data: dict) -> None:
    if not data["host"]:
        r.plain("No runtime host is up (start one with `lbctl runtime serve`).")
        return
    r.plain(f"Runtime host up, langbot-plugin {data.get('runtime_version') or 'unknown'}")
    if not data["plugins"]:
        r.plain("No plugins to run yet: `lbctl install` one and it starts at once.")
        return
    r.table(["ID", "STATE", "ERROR"], [[p["id"], p["state"], p.get("error") or ""] for p in data["plugins"]])


def _live_states(r: Renderer, data: dict) -> None:
    for p in data["plugins"]:
        error = f" ({p['error']})" if p.get("error") else ""
        r.plain(f"{p['id']} is {p['state']}{error}")


def _tools(r: Renderer, data: dict) -> None:
    on = f" on {r.heading}" if r.heading else ""
    if not data["tools"]:
        r.note(f"No tools{on} (is the plugin running?).")
        return
    r.table(["PLUGIN", "TOOL", "DESCRIPTION"], [[t["plugin"], t["name"], r.short(t.get("description"))] for t in data["tools"]],
            title=f"Tools{on}" if on else None)


def _commands(r: Renderer, data: dict) -> None:
    on = f" on {r.heading}" if r.heading else ""
    if not data["commands"]:
        r.note(f"No commands{on} (is the plugin running?).")
        return
    r.table(["PLUGIN", "COMMAND", "DESCRIPTION"],
            [[c["plugin"], c["name"], r.short(c.get("description"))] for c in data["commands"]],
            title=f"Commands{on}" if on else None)


def _call_result(r: Renderer, data: dict) -> None:
    result = data["result"]
    if isinstance(result, list) and all(isinstance(f, dict) and "text" in f for f in result):
        for frame in result:
            r.plain(str(frame["text"]))
    else:
        r.plain(result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False))


def _none(r: Renderer, data: dict) -> None:
    return None


def _outdated(r: Renderer, data: dict) -> None:
    on = f" on {r.heading}" if r.heading else ""
    if data["outdated"]:
        r.table(["ID", "VERSION", "LATEST"], [[o["id"], o["version"], o["latest"]] for o in data["outdated"]],
                title=f"Outdated{on}" if on else None)
    else:
        r.note(f"Every marketplace install{on} is up to date.")
    if data["not_updatable"]:
        r.table(["ID", "SOURCE", "REASON"], [[n["id"], n["source"], n["reason"]] for n in data["not_updatable"]],
                title=f"Not updatable{on}")


def _search(r: Renderer, data: dict) -> None:
    if not data["plugins"]:
        r.note("No plugins found.")
        return
    rows = [[p["id"] + (" (installed)" if p["installed"] else ""), p["latest_version"], p["install_count"],
             r.short(p["description"])] for p in data["plugins"]]
    r.table(["ID", "LATEST", "INSTALLS", "DESCRIPTION"], rows)
    shown = len(data["plugins"])
    r.note(f"Page {data['page']}: {shown} of {data['total']} matches.")


def _market_plugin(r: Renderer, data: dict) -> None:
    p = data["plugin"]
    label = (p.get("label") or {}).get("en_US") or p.get("name")
    for key, value in (("Id", p.get("plugin_id")), ("Label", label), ("Latest", p.get("latest_version")),
                       ("Installs", p.get("install_count")), ("Repository", p.get("repository")),
                       ("Tags", ", ".join(p.get("tags") or [])), ("Status", p.get("status")),
                       ("Updated", p.get("updated_at")), ("Description", (p.get("description") or {}).get("en_US"))):
        if value not in (None, ""):
            r.plain(f"{key + ':':<13}{value}")
    if data.get("versions") is not None:
        r.plain("Versions:    " + ", ".join(data["versions"]))


def _bundle(r: Renderer, data: dict) -> None:
    bundle = data["bundle"]
    for f in bundle["files"]:
        r.plain(f"saved {f['id']} {f['version']} -> {f['path']}")
    r.plain(f"wrote {bundle['file']} ({_plural(len(data['plugins']), 'plugin')})")


def _files(r: Renderer, data: dict) -> None:
    for f in data["files"]:
        r.plain(f"saved {f['id']} {f['version']} -> {f['path']}")
    for w in data.get("wheels") or []:
        r.plain(f"saved {w['name']} {w['version']} -> {w['path']} ({', '.join(w['plugins'])})")


def _verify(r: Renderer, data: dict) -> None:
    for pid in data["ok"]:
        r.plain(f"ok {pid}")
    for m in data["mismatched"]:
        r.plain(f"MISMATCH {m['id']}: expected {m['expected']}, found {m['actual']}")
    for pid in data["missing"]:
        r.plain(f"MISSING {pid}: the stored package is gone")


def _cache(r: Renderer, data: dict) -> None:
    rows = [[f["sha256"][:16], f["size"], ", ".join(f["ids"])] for f in data["files"]]
    if not rows:
        r.note("The cache is empty.")
        return
    r.table(["SHA256", "BYTES", "PACKAGES"], rows)
    r.note(f"{_plural(len(rows), 'package')}, {data['size']} bytes.")


def _cache_cleared(r: Renderer, data: dict) -> None:
    r.note(f"Removed {_plural(data['removed'], 'package')} ({data['size']} bytes).")


def _doctor(r: Renderer, data: dict) -> None:
    width = max((len(c["name"]) for c in data["checks"]), default=0)
    for c in data["checks"]:
        verdict = r.paint("ok  ", "green", err=False) if c["ok"] else r.paint("FAIL", "red", err=False)
        r.plain(f"{c['name']:<{width}}  {c['detail']}", prefix=verdict + " ")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _message(r: Renderer, data: dict) -> None:
    r.plain(data["message"])


def _labels(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _targets(r: Renderer, data: dict) -> None:
    rows = [[("* " if t["default"] else "  ") + t["name"], t["url"] or "(the environment)", t["api_key"] or "",
             _labels(t.get("labels"))] for t in data["targets"]]
    r.table(["NAME", "URL", "API KEY FROM", "LABELS"], rows)


def _target(r: Renderer, data: dict) -> None:
    t = data["target"]
    if t["kind"] == "local":
        fields = [("Target", "local"), ("Home", t["home"]), ("Marketplace", t["marketplace"]),
                  ("Host", "up" if t["host"] else "not running")]
    else:
        yes = lambda v: "yes" if v else "no"  # noqa: E731
        key = "no API key" if t["api_key"] == "none" else f"key from {t['api_key']}"
        fields = [("Target", t["name"]), ("URL", t["url"]), ("Labels", _labels(t.get("labels"))),
                  ("Reachable", yes(t["reachable"])), ("Authenticated", f"{yes(t['authenticated'])} ({key})"),
                  ("Version", t.get("version")), ("Runtime", "connected" if t["runtime_connected"] else "not connected"),
                  ("Marketplace", t.get("marketplace")), ("Operations", ", ".join(t.get("operations") or []))]
    for key, value in fields:
        if value not in (None, ""):
            r.plain(f"{key + ':':<15}{value}")


TABLES: dict[str, Callable[[Renderer, Any], None]] = {
    "message": _message, "targets": _targets, "target": _target,
    "actions": _summary_actions, "list": _list, "outdated": _outdated, "search": _search,
    "market_plugin": _market_plugin, "files": _files, "bundle": _bundle, "verify": _verify, "cache": _cache,
    "cache_cleared": _cache_cleared, "logs": _logs, "runtime_status": _runtime_status,
    "live_states": _live_states, "tools": _tools, "commands": _commands, "call_result": _call_result,
    "none": _none, "plugin": _plugin, "config": _config, "value": _value,
    "exit_codes": _exit_codes, "doctor": _doctor,
}



# --- several targets at once (spec §8) ------------------------------------------------------------------------


def fleet(r: Renderer, result: Result) -> None:
    """One summary row per target (target, status, what changed, first error) and a total line; with -v each
    target's own section comes first. Warnings said on several targets are said once, with their count."""
    if r.level >= 1:
        for part in result.parts:
            r._body(part, section=True)
    else:
        _fleet_warnings(r, result.parts)
    rows = [[p.target, _fleet_status(p), _fleet_changes(p) or "-", p.errors[0]["message"] if p.errors else ""]
            for p in result.parts]
    columns = ["TARGET", "STATUS", "CHANGED", "ERROR"]
    if r.tty:
        r.table(columns, rows)
    else:  # for grep and awk: aligned columns, nothing wrapped or cut
        cells = [[r._cell(str(v)) for v in row] for row in [columns, *rows]]
        widths = [max(map(len, column)) for column in zip(*cells)]
        for row in cells:
            r.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    r.plain(_fleet_total(result))


def _fleet_status(part: Result) -> str:
    return "ok" if part.exit_code == 0 else f"{part.status} ({part.exit_code})"


def _fleet_total(result: Result) -> str:
    counts: dict[str, int] = {}
    for part in result.parts:
        key = "ok" if part.exit_code == 0 else part.status
        counts[key] = counts.get(key, 0) + 1
    tally = ", ".join(f"{counts[k]} {k}" for k in ("ok", "partial", "error") if k in counts)
    worst = f"; exit code {result.exit_code}" if result.exit_code else ""
    return f"{_plural(len(result.parts), 'target')}: {tally}{worst}"


def _fleet_changes(part: Result) -> str:
    """What the command did or found on one target, in a few words."""
    data = part.data
    if not isinstance(data, dict):
        return ""
    if part.kind == "actions":
        counts: dict[str, int] = {}
        for a in data["actions"]:
            if a["status"] == "done":
                key = _PAST.get(a["action"], a["action"])
            elif a["status"] in ("planned", "failed"):
                key = f"{'would' if a['status'] == 'planned' else 'failed to'} {a['action']}"
            else:
                continue
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{verb} {n}" for verb, n in counts.items()) or "no change"
    if part.kind in ("list", "freeze"):
        return _plural(len(data["plugins"]), "plugin")
    if part.kind == "outdated":
        return f"{len(data['outdated'])} outdated" if data["outdated"] else "up to date"
    if part.kind == "doctor":
        failed = sum(not c["ok"] for c in data["checks"])
        return f"{failed} of {len(data['checks'])} checks failed" if failed else f"{len(data['checks'])} checks ok"
    return ""


def _fleet_warnings(r: Renderer, parts: tuple[Result, ...]) -> None:
    said: dict[str, list[str]] = {}
    for part in parts:
        for warning in part.warnings:
            said.setdefault(warning, []).append(part.target or "")
    for warning, where in said.items():
        r.warn(f"{where[0]}: {warning}" if len(where) == 1 else f"{warning} ({len(where)} targets)")
