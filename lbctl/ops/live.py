"""Changes take effect at once when a runtime host is up; otherwise they only change the environment."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Callable

from lbctl.context import Context
from lbctl.models import Result

_LIVE = {"install", "reinstall", "update", "downgrade", "uninstall", "config", "enable", "disable"}


def applies(use_case: Callable[..., Result]) -> Callable[..., Result]:
    """Give a use case that changes the environment a `wait` keyword: with a host up, the change is applied
    at once and the result says each plugin's live state (waiting at most `wait` seconds)."""

    @functools.wraps(use_case)
    def run(ctx: Context, *args, wait: float | None = None, **kwargs) -> Result:
        result = use_case(ctx, *args, **kwargs)
        return result if wait is None else apply(ctx, result, timeout=wait)

    return run


def host_up(ctx: Context) -> bool:
    """Cheap: whether a host's socket exists (a stale one is found out by the first request)."""
    from lbctl.runtime.client import socket_path

    return socket_path(ctx.env.home).exists()


def apply(ctx: Context, result: Result, *, timeout: float) -> Result:
    """Ask a running host to apply the change now and wait until each plugin is running or failed."""
    actions = result.data.get("actions", []) if isinstance(result.data, dict) else []
    ids = sorted({a["id"] for a in actions if a["action"] in _LIVE and a["status"] == "done"})
    if not ids or not host_up(ctx):
        return result
    from lbctl.runtime.client import HostClient

    if not HostClient(ctx.env.home).is_up():
        return result
    states = HostClient(ctx.env.home, timeout=timeout).reconcile_and_wait(ids, timeout=timeout)
    failed = {pid: s for pid, s in states.items() if s.get("state") in ("failed", "starting")}
    notes = tuple(f"{pid}: {s['state']}" + (f" ({s['error']})" if s.get("error") else "")
                  for pid, s in sorted(states.items()))
    errors = tuple({"code": "plugin_failed", "message": f"{pid} is {s['state']}: {s.get('error') or 'no reason given'}",
                    "hint": f"See `lbctl logs {pid}`.", "plugin": pid} for pid, s in failed.items())
    data = {**result.data, "live": [{"id": pid, **s} for pid, s in sorted(states.items())]}
    return replace(result, data=data, warnings=result.warnings + notes if failed else result.warnings,
                   errors=result.errors + errors, exit_code=result.exit_code or (1 if failed else 0))
