"""install: resolve every spec (and a plugins file), plan, confirm provenance switches, apply to the target."""

from __future__ import annotations

from pathlib import Path

from lbctl import plan, plugins_file
from lbctl.context import Context
from lbctl.errors import UsageError
from lbctl.models import Result
from lbctl.ops.common import apply, confirm_switches, planned
from lbctl.targets import open_one
from lbctl.ops.sync import file_steps


def install(ctx: Context, specs: list[str], *, force: bool = False, pre: bool = False, dry_run: bool = False,
            requirements: str | None = None, start: bool = True) -> Result:
    if not specs and not requirements:
        raise UsageError("Nothing to install: give a SPEC or -r FILE")
    target = open_one(ctx)
    records = target.records()
    entries = plugins_file.read(Path(requirements)) if requirements else []
    steps = file_steps(target, entries, records, prune=False)
    candidates = target.resolver.all(specs, pre=pre) if specs else []
    twice = {e.id for e in entries} & {c.id for c in candidates}
    if twice:
        raise UsageError(f"{', '.join(sorted(twice))} is both named and listed in {requirements}")
    steps += plan.install(records, candidates, force=force)
    if dry_run:
        return planned("install", steps, target=target)
    confirm_switches(ctx, steps)
    return apply("install", target, steps, start=start)
