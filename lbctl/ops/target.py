"""target add|list|show|remove|use|login: name LangBot instances in the user config file (spec §8)."""

from __future__ import annotations

import re
from typing import Callable

from lbctl import userconfig
from lbctl.context import Context
from lbctl.errors import NotFoundError, UsageError
from lbctl.models import Result
from lbctl.settings import config_path
from lbctl.targets import LOCAL, is_url, open_one, open_target
from lbctl.urls import require as require_url

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SECRET = 64 * 1024


def _check_name(name: str) -> None:
    if name == LOCAL or not NAME.match(name):
        raise UsageError(f"Invalid target name {name!r}: use letters, digits, '.', '_' and '-' (not 'local')")


def _known(ctx: Context, name: str) -> dict:
    if name not in ctx.settings.targets:
        raise NotFoundError(f"No target named {name!r}", hint="See `lbctl target list`.")
    return ctx.settings.targets[name]


def add(ctx: Context, name: str, url: str, *, api_key_env: str | None = None) -> Result:
    _check_name(name)
    if not is_url(url):
        raise UsageError(f"Invalid URL {url!r}: give LangBot's base URL, such as http://127.0.0.1:5300")
    require_url(url, "URL")  # a URL no client could use (issue 17 §4)
    if api_key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", api_key_env):
        raise UsageError(f"Invalid variable name {api_key_env!r}")
    entry = {"url": url.rstrip("/"), **({"api-key-env": api_key_env} if api_key_env else {})}
    userconfig.update_config(lambda data: data.setdefault("targets", {}).__setitem__(name, entry))
    return _done("target add", name, f"added target {name} ({entry['url']})")


def remove(ctx: Context, name: str) -> Result:
    _known(ctx, name)

    def forget(data: dict) -> None:
        data.get("targets", {}).pop(name, None)
        if data.get("target") == name:
            data.pop("target")

    userconfig.update_config(forget)
    userconfig.update_credentials(name, None)
    return _done("target remove", name, f"removed target {name}")


def use(ctx: Context, name: str) -> Result:
    if name != LOCAL and not is_url(name):
        _known(ctx, name)
    userconfig.update_config(lambda data: data.pop("target", None) if name == LOCAL else data.__setitem__("target", name))
    return _done("target use", name, f"commands now act on {name} (unless --target says otherwise)")


def login(ctx: Context, name: str, *, user: str | None = None, ask: Callable[[str], str]) -> Result:
    """Store an API key (or, with `user`, a LangBot login used only to read why a task failed)."""
    _known(ctx, name)
    secret = ask(f"Password of {user} on {name}" if user else f"API key of {name}")
    if not secret or len(secret) > MAX_SECRET or any(c in secret for c in "\r\n\0"):
        raise UsageError("Expected one line holding the secret on stdin or at the prompt")
    userconfig.update_credentials(name, {"user": user, "password": secret} if user else {"api_key": secret})
    what = f"a login for {user}" if user else "an API key"
    return _done("target login", name, f"stored {what} for {name} in {userconfig.credentials_path()} (0600)")


def list_targets(ctx: Context) -> Result:
    current = ctx.settings.target[0] if ctx.settings.target else LOCAL
    rows = [{"name": LOCAL, "url": None, "default": current == LOCAL, "api_key": None}]
    for name, entry in sorted(ctx.settings.targets.items()):
        source = userconfig.api_key(name, entry.get("api-key-env"))[1]
        rows.append({"name": name, "url": entry.get("url"), "default": current == name, "api_key": source})
    return Result("target list", "targets", {"targets": rows, "config_file": str(config_path())})


def show(ctx: Context, name: str | None = None) -> Result:
    target = open_target(ctx, name) if name else open_one(ctx)
    report = target.describe()
    problems = report.get("problems") or {}
    errors = tuple({"code": "target", "message": f"{probe}: {p['message']}", "hint": None, "plugin": None}
                   for probe, p in problems.items())
    code = max((p["code"] for p in problems.values()), default=0)
    return Result("target show", "target", {"target": report}, errors=errors, exit_code=code)


def _done(command: str, name: str, message: str) -> Result:
    return Result(command, "message", {"target": name, "message": message})
