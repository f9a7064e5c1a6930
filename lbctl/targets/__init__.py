"""Targets: where plugins are installed. `local` (the environment) or a LangBot instance (by name or URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lbctl.errors import UsageError

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.targets.base import Target

LOCAL = "local"


def is_url(name: str) -> bool:
    return name.lower().startswith(("http://", "https://"))


def open_targets(ctx: Context) -> list[Target]:
    """The targets this command acts on (--target, LBCTL_TARGET, `target use`; `local` by default)."""
    names = list(dict.fromkeys(ctx.settings.target or (LOCAL,)))
    return [open_target(ctx, name) for name in names]


def open_one(ctx: Context) -> Target:
    """The one target of a command that takes a single target."""
    targets = open_targets(ctx)
    if len(targets) != 1:
        raise UsageError("This command acts on one target at a time; give --target once",
                         hint="sync, list, outdated, update --all and freeze accept several.")
    return targets[0]


def open_target(ctx: Context, name: str) -> Target:
    if name == LOCAL:
        from lbctl.targets.local import LocalTarget

        return LocalTarget(ctx)
    defined = ctx.settings.targets.get(name)
    if defined is None and not is_url(name):
        known = ", ".join(sorted(ctx.settings.targets)) or "none yet"
        raise UsageError(f"Unknown target {name!r} (known: local, {known})",
                         hint="Add it with `lbctl target add NAME URL`, or give a URL.")
    from lbctl.targets.langbot import LangBotTarget
    from lbctl.urls import require as require_url

    url = str(defined.get("url", "")) if defined is not None else name
    if not is_url(url):
        raise UsageError(f"Target {name!r} has no valid url in the config file",
                         hint=f"Set it again with `lbctl target add {name} URL`.")
    require_url(url, "target URL" if defined is None else f"URL of the target {name}")  # issue 17 §4
    return LangBotTarget(ctx, name, url.rstrip("/"), api_key_env=(defined or {}).get("api-key-env"))
