"""Resolve global settings: flag, then LBCTL_* variable, then the user config file, then the default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lbctl.errors import UsageError

DEFAULT_INDEX_URL = "https://space.langbot.app"
MAX_SECONDS = 366 * 24 * 3600  # a deadline longer than a year is a typo (and overflows what sockets accept)
# Targets a fleet command works on at once. Most of a target's time is spent waiting for LangBot (an install
# takes about a second there, one at a time), so many waits overlap; each costs a thread and a connection.
DEFAULT_JOBS = 128

# name -> (environment variable, kind)
_KEYS: dict[str, tuple[str | None, str]] = {
    "home": ("LBCTL_HOME", "path"),
    "index_url": ("LBCTL_INDEX_URL", "str"),
    "cache_dir": ("LBCTL_CACHE_DIR", "path"),
    "no_cache": (None, "bool"),
    "offline": ("LBCTL_OFFLINE", "bool"),
    "find_links": ("LBCTL_FIND_LINKS", "paths"),
    "output": ("LBCTL_OUTPUT", "str"),
    "yes": ("LBCTL_YES", "bool"),
    "no_color": ("NO_COLOR", "present"),
    "no_progress": (None, "bool"),
    "verbosity": (None, "int"),
    "lock_timeout": ("LBCTL_LOCK_TIMEOUT", "float"),
    "timeout": ("LBCTL_TIMEOUT", "float"),
    "target": ("LBCTL_TARGET", "names"),
    "wait_ready": (None, "float"),
    "jobs": ("LBCTL_JOBS", "int"),
}


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The user config file (TOML, keys named like the long options)."""
    if environ.get("LBCTL_CONFIG"):
        return Path(environ["LBCTL_CONFIG"])
    from platformdirs import user_config_dir

    return Path(user_config_dir("lbctl")) / "config.toml"


@dataclass(frozen=True)
class Settings:
    home: Path
    cache_dir: Path
    index_url: str = DEFAULT_INDEX_URL
    no_cache: bool = False
    offline: bool = False
    find_links: tuple[Path, ...] = ()
    output: str = "table"
    yes: bool = False
    no_color: bool = False
    no_progress: bool = False
    verbosity: int = 0
    lock_timeout: float = 10.0
    timeout: float = 60.0
    target: tuple[str, ...] = ()
    wait_ready: float | None = None
    jobs: int = DEFAULT_JOBS
    targets: dict = field(default_factory=dict)  # [targets.NAME] tables of the user config file

    @property
    def json(self) -> bool:
        return self.output == "json"


def _convert(name: str, kind: str, value: Any) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    if kind == "present":
        return value is not None and value is not False
    if kind == "path":
        return Path(str(value)).expanduser()
    if kind == "names":  # a comma list of names, or a label selector `k=v,k2=v2` kept whole (lbctl.targets)
        parts = value if isinstance(value, (list, tuple)) else [value]
        return tuple(n.strip() for part in parts for n in _names(str(part)) if n.strip())
    if kind == "paths":
        parts = value if isinstance(value, (list, tuple)) else str(value).split(os.pathsep)
        return tuple(Path(str(p)).expanduser() for p in parts if str(p))
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except (TypeError, ValueError):
        raise UsageError(f"Invalid value for {name.replace('_', '-')}: {value!r}") from None


def _names(value: str) -> list[str]:
    return [value] if "=" in value and not value.lower().startswith(("http://", "https://")) else value.split(",")


def _read_user_config(environ: Mapping[str, str]) -> dict:
    from lbctl.fsutil import read_own_file

    path = config_path(environ)
    try:
        raw = read_own_file(path)  # a FIFO, /dev/zero or 600 MiB there is exit 6, not a hang or a MemoryError
    except FileNotFoundError:
        return {}
    from lbctl.tomlio import loads

    try:
        data = loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc}") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from flags (None = not given), the environment and the user config file."""
    user = _read_user_config(environ)
    values: dict[str, Any] = {}
    for name, (env, kind) in _KEYS.items():
        if flags.get(name) not in (None, (), []):
            values[name] = _convert(name, kind, flags[name])
        elif env and env in environ and (kind == "present" or environ[env] != ""):
            values[name] = _convert(name, kind, environ[env])
        elif name in user:
            values[name] = _convert(name, kind, user[name])
    if "home" not in values:
        from platformdirs import user_data_dir

        values["home"] = Path(user_data_dir("lbctl"))
    if "cache_dir" not in values:
        from platformdirs import user_cache_dir

        values["cache_dir"] = Path(user_cache_dir("lbctl"))
    if values.get("output", "table") not in ("table", "json"):
        raise UsageError(f"Invalid output format {values['output']!r}: use table or json")
    values["index_url"] = values.get("index_url", DEFAULT_INDEX_URL).rstrip("/")
    from lbctl.urls import has_credentials, require

    if has_credentials(values["index_url"]):
        raise UsageError("The marketplace URL (--index-url) holds a user name or password: lbctl sends the "
                         "marketplace no credentials", hint="Give the URL without `user:password@`.")
    values["index_url"] = require(values["index_url"], "index URL")
    values["targets"] = _targets_table(user.get("targets", {}))
    for name in ("timeout", "wait_ready", "lock_timeout"):
        value = values.get(name)
        if value is not None and not (0 <= value <= MAX_SECONDS and (value > 0 or name == "lock_timeout")):
            flag = "LBCTL_LOCK_TIMEOUT" if name == "lock_timeout" else f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} must be a number of seconds above 0 and at most {MAX_SECONDS} (one year), "
                             f"not {value!r}")
    if values.get("jobs") is not None and values["jobs"] < 1:
        raise UsageError("--jobs must be 1 or more")
    return Settings(**values)


def _targets_table(table: Any) -> dict:
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise UsageError(f"The config file {config_path()} has an invalid [targets] table",
                         hint="Each target is a table: [targets.NAME] with url = \"http://…\".")
    return table
