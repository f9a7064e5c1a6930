"""pin, unpin and rollback (spec §4), on any target."""

from __future__ import annotations

from lbctl import plan
from lbctl.context import Context
from lbctl.errors import NotFoundError
from lbctl.models import Result
from lbctl.ops.common import apply, confirm_switches, planned, require_ids
from lbctl.targets import open_one


def pin(ctx: Context, ids: list[str], *, reason: str | None = None, pinned: bool = True) -> Result:
    require_ids(ids)
    target = open_one(ctx)
    steps = [plan.pin_step(target.record(pid), pinned, reason) for pid in target.expand(ids)]
    return apply("pin" if pinned else "unpin", target, steps, start=False)


def rollback(ctx: Context, plugin_id: str, *, dry_run: bool = False, start: bool = True) -> Result:
    target = open_one(ctx)
    record = target.record(target.expand([plugin_id])[0])
    if not record.previous_sha256:
        raise NotFoundError(f"{record.id} has nothing to roll back to", plugin=record.id,
                            hint="Only a package that an install, update or downgrade replaced can be put back.")
    candidate = target.resolver.previous(record)
    _check_previous(record, candidate.info)
    steps = [plan.Step(record.id, "rollback", record, candidate)]
    if dry_run:
        return planned("rollback", steps, target=target)
    confirm_switches(ctx, steps)
    return apply("rollback", target, steps, start=start)


def _check_previous(record, info) -> None:
    """The package kept for a rollback must be that plugin's, in the version recorded with it: a record whose
    previous_sha256 names another package (a state.json edited by hand) would "roll back" to something else."""
    wanted = record.previous_version
    if info.id == record.id and (wanted is None or info.version == wanted):
        return
    raise NotFoundError(
        f"{record.id} has nothing to roll back to: the package its record keeps for a rollback is {info.id} "
        f"{info.version}, not {record.id} {wanted or '(any version)'}", plugin=record.id,
        hint=f"Install the version you want: `lbctl install '{record.id}=={wanted}'`." if wanted else
        f"Install the version you want: `lbctl install '{record.id}==VERSION'`.")
