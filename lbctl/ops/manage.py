"""uninstall, enable, disable: changes to installed plugins that need no package."""

from __future__ import annotations

from lbctl import plan
from lbctl.context import Context
from lbctl.errors import ConfirmationNeededError
from lbctl.models import Result
from lbctl.ops.common import apply, planned, require_ids
from lbctl.targets import open_one


def uninstall(ctx: Context, ids: list[str], *, purge: bool = False, dry_run: bool = False,
              start: bool = True) -> Result:
    require_ids(ids)
    target = open_one(ctx)
    records = target.records()
    ids = target.expand(ids)
    kept = target.kept_config() if purge else set()
    for pid in ids:
        if pid not in records and pid not in kept:
            raise target.not_installed(pid)
    steps = plan.uninstall(records, ids, purge=purge)
    if dry_run:
        return planned("uninstall", steps, target=target)
    if purge and not (ctx.settings.yes or ctx.confirm(f"Delete the config and stored data of {', '.join(ids)}?")):
        raise ConfirmationNeededError("Not purging: not confirmed", hint="Pass --yes to confirm.")
    return apply("uninstall", target, steps, start=start)


def set_enabled(ctx: Context, ids: list[str], *, enabled: bool, start: bool = True) -> Result:
    require_ids(ids)
    target = open_one(ctx)
    target.check_supported("enable" if enabled else "disable")
    steps = [plan.enable_step(target.record(pid), enabled) for pid in ids]
    return apply("enable" if enabled else "disable", target, steps, start=start)
