"""The user config file (targets, the default target) and the credentials file beside it (mode 0600).

Both are TOML. The config file holds no secret; API keys and optional LangBot logins live only in the
credentials file, written atomically with owner-only permissions, never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from lbctl.errors import PreconditionError, UsageError
from lbctl.fsutil import read_own_file, write_atomic
from lbctl.settings import config_path

KEY_VARIABLES = ("LBCTL_API_KEY", "LANGBOT_API_KEY")


def credentials_path(environ: Mapping[str, str] = os.environ) -> Path:
    return config_path(environ).parent / "credentials.toml"


def read(path: Path) -> dict[str, Any]:
    from lbctl import tomlio

    try:
        text = read_own_file(path).decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise PreconditionError(f"Cannot read {path}: {exc}") from None
    try:
        return tomlio.loads(text)
    except tomlio.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def write(path: Path, data: dict[str, Any], *, mode: int) -> None:
    from lbctl import tomlio

    try:
        write_atomic(path, tomlio.dumps(data).encode(), mode=mode)
    except OSError as exc:
        raise PreconditionError(f"Cannot write {path}: {exc.strerror or exc}") from None


def update_config(change, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Read the config file, let `change` edit the dict, write it back (keeping its permissions)."""
    path = config_path(environ)
    data = read(path)
    change(data)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    write(path, data, mode=mode)
    return data


def credentials(name: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    entry = read(credentials_path(environ)).get(name)
    return entry if isinstance(entry, dict) else {}


def update_credentials(name: str, values: dict[str, Any] | None, environ: Mapping[str, str] = os.environ) -> None:
    """Set (or with None, forget) the stored credentials of one target."""
    path = credentials_path(environ)
    data = read(path)
    if values is None:
        data.pop(name, None)
    else:
        data[name] = {**(data.get(name) if isinstance(data.get(name), dict) else {}), **values}
    write(path, data, mode=0o600)


def api_key(name: str, api_key_env: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """The API key of a target and where it came from: the variable named by --api-key-env, then
    LBCTL_API_KEY, then LANGBOT_API_KEY, then the credentials file."""
    for variable in ((api_key_env,) if api_key_env else ()) + KEY_VARIABLES:
        if environ.get(variable):
            return environ[variable], f"${variable}"
    stored = credentials(name, environ).get("api_key")
    if isinstance(stored, str) and stored:
        return stored, str(credentials_path(environ))
    return None, "none"
