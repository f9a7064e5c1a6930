"""target add|list|show|remove|use|login|label: name LangBot instances in the user config file (spec §8)."""

from __future__ import annotations

import re
from typing import Callable

from lbctl import userconfig
from lbctl.context import Context
from lbctl.errors import CredentialsError, LbctlError, NotFoundError, UsageError
from lbctl.models import Result
from lbctl.settings import config_path
from lbctl.targets import LOCAL, is_selector, is_url, open_one, open_target, parse_label, refuse_credentials
from lbctl.urls import has_credentials, require as require_url

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SECRET = 64 * 1024


def _check_name(name: str) -> None:
    if name == LOCAL or not NAME.match(name):
        raise UsageError(f"Invalid target name {name[:100]!r}: use letters, digits, '.', '_' and '-' (not 'local')")


def _known(ctx: Context, name: str) -> dict:
    if name not in ctx.settings.targets:
        raise NotFoundError(f"No target named {name[:100]!r}", hint="See `lbctl target list`.")
    return ctx.settings.targets[name]


def _targets(data: dict) -> dict:
    table = data.setdefault("targets", {})
    if not isinstance(table, dict):
        raise UsageError(f"The config file {config_path()} has an invalid [targets] table")
    return table


def add(ctx: Context, name: str, url: str, *, api_key_env: str | None = None, labels: list[str] = ()) -> Result:
    """Define a target as given: its URL, --api-key-env and labels replace those of a target of that name (its
    stored login is kept). Says whether it was added, updated or already so."""
    _check_name(name)
    refuse_credentials(url, "The URL")
    if not is_url(url):
        raise UsageError(f"Invalid URL {url[:200]!r}: give LangBot's base URL, such as http://127.0.0.1:5300")
    require_url(url, "URL")  # a URL no client could use (issue 17 §4)
    if api_key_env is not None and not VARIABLE.match(api_key_env):
        raise UsageError(f"Invalid variable name {api_key_env[:100]!r}")
    entry: dict = {"url": url.rstrip("/")}
    if api_key_env:
        entry["api-key-env"] = api_key_env
    if labels:
        entry["labels"] = dict(parse_label(item) for item in labels)

    def define(data: dict) -> dict | None:
        table = _targets(data)
        old = table.get(name)
        table[name] = entry
        return old

    old = userconfig.update_config(define)
    if old is None:
        change, message = "added", f"added target {name} ({entry['url']})"
    elif old == entry:
        change, message = "unchanged", f"target {name} is unchanged ({entry['url']})"
    else:
        fields = [f for f in ("url", "api-key-env", "labels") if (old or {}).get(f) != entry.get(f)] or ["entry"]
        change, message = "updated", f"updated target {name} ({entry['url']}): {', '.join(fields)} changed"
    return Result("target add", "message", {"target": name, "change": change, "message": message})


def label(ctx: Context, name: str, changes: list[str]) -> Result:
    """`KEY=VALUE` sets a label, `KEY-` removes one (kubectl's `label`)."""
    _known(ctx, name)
    sets, drops = {}, []
    for item in changes:
        if item.endswith("-") and "=" not in item:
            drops.append(parse_label(item[:-1] + "=")[0])
        else:
            key, value = parse_label(item)
            sets[key] = value

    def relabel(data: dict) -> dict:
        entry = _targets(data).get(name)
        if not isinstance(entry, dict):
            raise NotFoundError(f"No target named {name!r}", hint="See `lbctl target list`.")
        labels = {k: v for k, v in (entry.get("labels") or {}).items() if k not in drops}
        labels.update(sets)
        if labels:
            entry["labels"] = labels
        else:
            entry.pop("labels", None)
        return labels

    labels = userconfig.update_config(relabel)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
    return Result("target label", "message", {"target": name, "labels": labels,
                                              "message": f"labels of {name}: {shown}"})


def remove(ctx: Context, name: str) -> Result:
    _known(ctx, name)

    def forget(data: dict) -> None:
        _targets(data).pop(name, None)
        if data.get("target") == name:
            data.pop("target")

    # Its login first: a credentials file that cannot be read or written stops the removal before the target
    # is gone (which would leave its key behind with nothing to name it).
    userconfig.update_credentials(name, None)
    userconfig.update_config(forget)
    return _done("target remove", name, f"removed target {name}")


def use(ctx: Context, name: str) -> Result:
    if is_selector(name):
        raise UsageError("`target use` takes one target name, `local` or a URL; give a selector with --target",
                         hint="lbctl --target env=prod list")
    if is_url(name):
        refuse_credentials(name, "The URL")
    elif name != LOCAL:
        _known(ctx, name)
    userconfig.update_config(lambda data: data.pop("target", None) if name == LOCAL else data.__setitem__("target", name))
    return _done("target use", name, f"commands now act on {name} (unless --target says otherwise)")


def login(ctx: Context, name: str, *, user: str | None = None, ask: Callable[[str], str]) -> Result:
    """Store an API key (or, with `user`, a LangBot login used only to read why a task failed)."""
    _known(ctx, name)
    secret = ask(f"Password of {user} on {name}" if user else f"API key of {name}").strip()
    what = f"password of {user}" if user else "API key"
    if not secret:
        raise CredentialsError(f"No {what} given: pipe it in (`printenv KEY | lbctl target login {name}"
                               f"{' --user ' + user if user else ''}`) or type it at the prompt")
    if user:
        if len(secret) > MAX_SECRET or any(ord(c) < 32 or ord(c) == 127 for c in secret):
            raise CredentialsError("The password given to `target login` holds control characters or is too long")
        values = {"user": user, "password": secret}
    else:
        values = {"api_key": userconfig.check_key(secret, "`target login`'s input")}
    userconfig.update_credentials(name, values)
    stored = f"a login for {user}" if user else "an API key"
    return _done("target login", name, f"stored {stored} for {name} in {userconfig.credentials_path()} (0600)")


def list_targets(ctx: Context) -> Result:
    current = ctx.settings.target[0] if ctx.settings.target else LOCAL
    rows = [{"name": LOCAL, "url": None, "default": current == LOCAL, "api_key": None, "labels": {}}]
    for name, entry in sorted(ctx.settings.targets.items()):
        url = str(entry.get("url") or "")
        labels = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
        rows.append({"name": name, "url": "(holds credentials: set it again)" if has_credentials(url) else url,
                     "default": current == name, "api_key": key_source(name, entry.get("api-key-env")),
                     "labels": labels})
    return Result("target list", "targets", {"targets": rows, "config_file": str(config_path())})


def key_source(name: str, api_key_env: str | None) -> str:
    """Where a target's key comes from, for `target list` (an unusable key says so, never showing it)."""
    try:
        return userconfig.api_key(name, api_key_env)[1]
    except userconfig.UnusableKeyError as exc:
        return f"unusable key in {exc.source}"
    except LbctlError:
        return "unreadable credentials file"


def show(ctx: Context, name: str | None = None) -> Result:
    target = open_target(ctx, name) if name else open_one(ctx)
    report = target.describe()
    problems = {probe: p for probe, p in (report.get("problems") or {}).items() if p["code"]}
    errors = tuple({"code": "target", "message": p["message"], "hint": p.get("hint"), "plugin": None}
                   for p in problems.values())
    code = max((p["code"] for p in problems.values()), default=0)
    return Result("target show", "target", {"target": report}, errors=errors, exit_code=code)


def _done(command: str, name: str, message: str) -> Result:
    return Result(command, "message", {"target": name, "message": message})
