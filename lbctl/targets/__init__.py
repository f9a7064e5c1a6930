"""Targets: where plugins are installed. `local` (the environment) or a LangBot instance (by name, URL or labels)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from lbctl.errors import NotFoundError, PreconditionError, UsageError
from lbctl.urls import has_credentials

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.targets.base import Target

LOCAL = "local"
# kubectl's label syntax: an optional DNS prefix and '/', a name of at most 63 characters; values the same or empty.
_LABEL_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"^(?:[a-z0-9](?:[a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
LABEL_VALUE = re.compile(rf"^(?:{_LABEL_NAME})?$")


def is_url(name: str) -> bool:
    return name.lower().startswith(("http://", "https://"))


def refuse_credentials(url: str, what: str) -> None:
    """Exit 2 for a URL holding `user:password@` (never echoing it): keys are stored with `target login`."""
    if has_credentials(url):
        raise UsageError(f"{what} holds a user name or password: lbctl does not keep secrets in URLs",
                         hint="Give the URL without `user:password@` and store the key with `lbctl target login NAME`.")


def is_selector(item: str) -> bool:
    return "=" in item and not is_url(item)


def parse_label(item: str) -> tuple[str, str]:
    """`KEY=VALUE` -> (key, value); exit 2 when either is not a label (kubectl's syntax)."""
    key, sep, value = item.partition("=")
    if not sep or not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
        raise UsageError(f"Invalid label {item[:200]!r}: use KEY=VALUE, each of letters, digits, '-', '_' and '.' "
                         "(at most 63 characters, starting and ending with a letter or digit)")
    return key, value


def parse_selector(selector: str) -> dict[str, str]:
    """`k=v,k2=v2` -> {k: v, k2: v2}: every label must match (kubectl's -l)."""
    pairs = [part.strip() for part in selector.split(",")]
    if not all("=" in part for part in pairs):
        raise UsageError(f"Invalid selector {selector[:200]!r}: a selector is KEY=VALUE[,KEY=VALUE…]",
                         hint="Give names and selectors in separate --target options: --target prod --target env=eu.")
    return dict(parse_label(part) for part in pairs)


def select(targets: dict, selector: str) -> list[str]:
    """The names of the targets whose labels hold every KEY=VALUE of `selector`, sorted; exit 5 when none does."""
    wanted = parse_selector(selector)
    names = sorted(name for name, entry in targets.items()
                   if isinstance(entry.get("labels"), dict)
                   and all(entry["labels"].get(k) == v for k, v in wanted.items()))
    if not names:
        raise NotFoundError(f"No target has the labels {selector}",
                            hint="See the labels with `lbctl target list`; set them with `lbctl target label NAME K=V`.")
    return names


def target_names(ctx: Context, items: Iterable[str] | None = None) -> list[str]:
    """The target names a command was given (--target, LBCTL_TARGET, `target use`; `local` by default), each
    selector replaced by the targets it selects, without repeats."""
    names: list[str] = []
    for item in items if items is not None else (ctx.settings.target or (LOCAL,)):
        names += select(ctx.settings.targets, item) if is_selector(item) else [item]
    return list(dict.fromkeys(names))


def open_targets(ctx: Context) -> list[Target]:
    """The targets this command acts on."""
    return [open_target(ctx, name) for name in target_names(ctx)]


def open_one(ctx: Context) -> Target:
    """The one target of a command that takes a single target."""
    names = target_names(ctx)
    if len(names) != 1:
        raise UsageError(f"This command acts on one target at a time, and --target names {len(names)} "
                         f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''})",
                         hint="sync, list, outdated, update --all, freeze and doctor accept several.")
    return open_target(ctx, names[0])


def require_local(ctx: Context, command: str, reason: str, hint: str | None = None) -> None:
    """For a command that only works on the local environment: exit 6 naming the other target it was given
    (an unknown name is still exit 5), never an answer about the local environment instead."""
    for name in target_names(ctx):
        if name != LOCAL:
            other = open_target(ctx, name)
            raise PreconditionError(f"`{command}` cannot act on {other.name}: {reason}",
                                    hint=hint or f"Drop --target (or give --target local) to {command} locally.")


def open_target(ctx: Context, name: str) -> Target:
    if name == LOCAL:
        from lbctl.targets.local import LocalTarget

        return LocalTarget(ctx)
    if is_url(name):
        refuse_credentials(name, "The target URL")
    defined = ctx.settings.targets.get(name)
    if defined is None and not is_url(name):
        known = ", ".join(sorted(ctx.settings.targets)) or "none yet"
        raise NotFoundError(f"No target named {name[:200]!r} (known: local, {known})",
                            hint="Add it with `lbctl target add NAME URL`, or give a URL.")
    from lbctl.targets.langbot import LangBotTarget
    from lbctl.urls import require as require_url

    url = str(defined.get("url", "")) if defined is not None else name
    if not is_url(url):
        raise UsageError(f"Target {name!r} has no valid url in the config file",
                         hint=f"Set it again with `lbctl target add {name} URL`.")
    refuse_credentials(url, f"The URL of target {name!r} in the config file")
    require_url(url, "target URL" if defined is None else f"URL of the target {name}")  # issue 17 §4
    return LangBotTarget(ctx, name, url.rstrip("/"), api_key_env=(defined or {}).get("api-key-env"))
