"""The user config file (targets, the default target) and the credentials file beside it (mode 0600).

Both are TOML. The config file holds no secret; API keys and optional LangBot logins live only in the
credentials file, never printed. Both are changed read-modify-write under one flock and replaced atomically,
so that parallel `target add` and `target login` runs all keep what they wrote.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from lbctl.errors import CredentialsError, LockedError, PreconditionError, UsageError
from lbctl.fsutil import holding_lock, private_dir, read_own_file, write_atomic
from lbctl.settings import config_path

KEY_VARIABLES = ("LBCTL_API_KEY", "LANGBOT_API_KEY")
MAX_FILE = 1024 * 1024
MAX_KEY = 4096  # an HTTP header line; LangBot's keys are ~40 characters
LOCK_TIMEOUT = 10.0


def credentials_path(environ: Mapping[str, str] = os.environ) -> Path:
    return config_path(environ).parent / "credentials.toml"


def read(path: Path) -> dict[str, Any]:
    from lbctl import tomlio

    try:  # a FIFO, a device, a dangling link or an oversized file there is exit 6, never a hang
        text = read_own_file(path, MAX_FILE).decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise PreconditionError(f"Cannot read {path}: it is not UTF-8 text") from None
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


@contextmanager
def locked(environ: Mapping[str, str] = os.environ, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """The lock of the config file and the credentials file (one lock for both, beside them)."""
    path = config_path(environ)
    private_dir(path.parent)
    with holding_lock(path.parent / f".{path.name}.lock", timeout, lambda: LockedError(
            f"The user config {path} is locked by another lbctl process", hint="Wait for it to finish and try again."),
            poll=0.01):
        yield


def update_config(change: Callable[[dict], Any], environ: Mapping[str, str] = os.environ) -> Any:
    """Read the config file, let `change` edit the dict, write it back (keeping its permissions); under the lock.
    Returns what `change` returned; nothing is written when the dict is unchanged."""
    path = config_path(environ)
    with locked(environ):
        data = read(path)
        before = repr(data)
        outcome = change(data)
        if repr(data) != before:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            write(path, data, mode=mode)
    return outcome


def credentials(name: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    entry = _logins(credentials_path(environ)).get(name)
    return dict(entry) if isinstance(entry, dict) else {}


def _logins(path: Path) -> dict[str, Any]:
    """The credentials file, parsed once per version of it: a fleet of N targets reads it once, not N times."""
    try:
        info = os.stat(path)
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
    except OSError:
        version = None
    return _parsed(path, version)


@lru_cache(maxsize=4)
def _parsed(path: Path, version: tuple | None) -> dict[str, Any]:
    return read(path) if version is not None else {}


def update_credentials(name: str, values: dict[str, Any] | None, environ: Mapping[str, str] = os.environ) -> None:
    """Set (or with None, forget) the stored credentials of one target; under the lock."""
    path = credentials_path(environ)
    with locked(environ):
        data = read(path)
        if values is None:
            if name not in data:
                return
            data.pop(name)
        else:
            data[name] = {**(data.get(name) if isinstance(data.get(name), dict) else {}), **values}
        write(path, data, mode=0o600)


class UnusableKeyError(CredentialsError):
    """A key that cannot be one; `source` says where it was read (the key itself is never kept in the error)."""

    def __init__(self, message: str, *, source: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.source = source


def check_key(key: Any, source: str) -> str:
    """`key` when it can be an API key (printable ASCII without spaces, at most MAX_KEY characters); otherwise
    UnusableKeyError naming `source`, never the key itself."""
    if not isinstance(key, str) or not key:
        raise UnusableKeyError(f"The API key from {source} is empty or not text", source=source,
                               hint="Store the key again (`lbctl target login NAME`) or fix the variable.")
    if len(key) > MAX_KEY or not all("!" <= c <= "~" for c in key):
        raise UnusableKeyError(
            f"The API key from {source} is not usable: a key is one word of printable ASCII characters "
            f"(no spaces, line breaks or control characters; at most {MAX_KEY})", source=source,
            hint="Copy the key again from LangBot: a trailing carriage return or a pasted space is the usual cause.")
    return key


def api_key(name: str, api_key_env: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """The API key of a target and where it came from (spec §8). The target's own credential comes first: the
    variable its --api-key-env names, else its stored login. Only a target with neither (a bare URL, or a name
    without a credential of its own) reads LBCTL_API_KEY, else LANGBOT_API_KEY; a target that names its own
    variable never gets the generic key of another instance. A key that cannot be one is CredentialsError."""
    if api_key_env and environ.get(api_key_env):
        return check_key(environ[api_key_env], f"${api_key_env}"), f"${api_key_env}"
    stored = credentials(name, environ).get("api_key") if "://" not in name else None  # a URL has no login
    if stored is not None:
        return check_key(stored, f"{credentials_path(environ)} [{name}]"), "target login"
    if api_key_env:
        return None, f"${api_key_env} (not set)"
    for variable in KEY_VARIABLES:
        if environ.get(variable):
            return check_key(environ[variable], f"${variable}"), f"${variable}"
    return None, "none"
