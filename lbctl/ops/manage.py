"""uninstall, enable, disable: changes to installed plugins that need no package."""

from __future__ import annotations

from dataclasses import replace

from lbctl.context import Context
from lbctl.errors import ConfirmationNeededError, NotInstalledError, UsageError
from lbctl.models import Action, Result
from lbctl.state import State
from lbctl.ops import live


def _require_ids(ids: list[str]) -> None:
    if not ids:
        raise UsageError("Name at least one plugin id")


def _check_known(state: State, ids: list[str], *, allow_config_only: bool = False) -> None:
    for pid in ids:
        known = pid in state.plugins or (allow_config_only and pid in state.config)
        if not known:
            raise NotInstalledError(f"{pid} is not installed", plugin=pid, hint="Run `lbctl list` to see what is.")


@live.applies
def uninstall(ctx: Context, ids: list[str], *, purge: bool = False, dry_run: bool = False) -> Result:
    _require_ids(ids)
    _check_known(ctx.env.load(), ids, allow_config_only=purge)
    if dry_run:
        return _actions("uninstall", _uninstall_actions(ctx.env.load(), ids, purge, "planned"))
    if purge and not (ctx.settings.yes or ctx.confirm(f"Delete the config and stored data of {', '.join(ids)}?")):
        raise ConfirmationNeededError("Not purging: not confirmed", hint="Pass --yes to confirm.")
    with ctx.env.transaction() as state:
        _check_known(state, ids, allow_config_only=purge)
        actions = _uninstall_actions(state, ids, purge, "done")
        for pid in ids:
            state.plugins.pop(pid, None)
            if purge:
                state.config.pop(pid, None)
    if purge:
        _purge_data(ctx, ids)
    return _actions("uninstall", actions)


def _uninstall_actions(state: State, ids: list[str], purge: bool, status: str) -> list[Action]:
    actions = []
    for pid in ids:
        record = state.plugins.get(pid)
        if record:
            actions.append(Action(pid, "uninstall", status, from_=record.version, source=record.source))
        if purge:
            actions.append(Action(pid, "purge", status, reason="config and stored data deleted"))
    return actions


def _purge_data(ctx: Context, ids: list[str]) -> None:
    path = ctx.env.home / "storage.db"
    if not path.exists():
        return
    from lbctl.runtime.storage import Storage

    storage = Storage(path)
    try:
        for pid in ids:
            storage.purge("plugin", pid)
    finally:
        storage.close()


@live.applies
def set_enabled(ctx: Context, ids: list[str], *, enabled: bool) -> Result:
    _require_ids(ids)
    verb = "enable" if enabled else "disable"
    with ctx.env.transaction() as state:
        _check_known(state, ids)
        actions = []
        for pid in ids:
            record = state.plugins[pid]
            if record.enabled == enabled:
                actions.append(Action(pid, "skip", "skipped", reason=f"already {verb}d"))
                continue
            state.plugins[pid] = replace(record, enabled=enabled)
            actions.append(Action(pid, verb, "done", to=record.version, source=record.source))
    return _actions(verb, actions)


def _actions(command: str, actions: list[Action]) -> Result:
    return Result(command, "actions", {"actions": [a.to_json() for a in actions]})
