"""install: resolve, verify, plan, confirm provenance switches, then commit in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from lbctl import configschema
from lbctl.context import Context
from lbctl.errors import ConfirmationNeededError, UsageError
from lbctl.models import Action, Record, Result
from lbctl.ops.resolve import Candidate, resolve_all, stored_schema
from lbctl.state import State
from lbctl.ops import live


@dataclass(frozen=True)
class Step:
    candidate: Candidate
    action: str
    current: Record | None
    reason: str | None = None

    @property
    def switches_provenance(self) -> bool:
        cur = self.current
        return cur is not None and (cur.source == "marketplace") != (self.candidate.source == "marketplace")

    def to_action(self, status: str) -> Action:
        info = self.candidate.info
        return Action(
            id=info.id,
            action=self.action,
            status="skipped" if self.action == "skip" else status,
            from_=self.current.version if self.current else None,
            to=info.version,
            source=self.candidate.source,
            reason=self.reason,
        )


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def compare_versions(a: str, b: str) -> int:
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        va, vb = a, b  # type: ignore[assignment]
    return (va > vb) - (va < vb)


def plan_step(current: Record | None, cand: Candidate, *, force: bool) -> Step:
    info = cand.info
    if current is None:
        return Step(cand, "install", None)
    order = compare_versions(info.version, current.version)
    if order > 0:
        return Step(cand, "update", current)
    if order < 0:
        return Step(cand, "downgrade", current)
    same = current.sha256 == info.sha256 and current.source == cand.source
    if same and not force:
        return Step(cand, "skip", current, "already installed")
    return Step(cand, "reinstall", current)


def confirm_switches(ctx: Context, steps: list[Step]) -> None:
    for step in steps:
        if not step.switches_provenance or step.action == "skip":
            continue
        cur, new = step.current.source, step.candidate.source  # type: ignore[union-attr]
        note = " A local install no longer receives updates." if new != "marketplace" else ""
        message = f"{step.candidate.info.id} is a {cur} install; replace it with the {new} package?{note}"
        if not (ctx.settings.yes or ctx.confirm(message)):
            raise ConfirmationNeededError(f"Not replacing {step.candidate.info.id}: not confirmed",
                                          hint="Pass --yes to confirm.", plugin=step.candidate.info.id)


def apply_step(ctx: Context, state: State, step: Step) -> list[str]:
    """Store the package and record it; returns warnings (config keys the new schema dropped)."""
    cand, cur = step.candidate, step.current
    info = cand.info
    ctx.env.store_package(cand.path, info.sha256)
    previous = cur.sha256 if cur and cur.sha256 != info.sha256 else (cur.previous_sha256 if cur else None)
    prev_version = cur.version if cur and cur.sha256 != info.sha256 else (cur.previous_version if cur else None)
    state.plugins[info.id] = Record(
        id=info.id, version=info.version, source=cand.source, sha256=info.sha256,
        installed_at=now(), spec=cand.spec, origin=cand.origin,
        enabled=cur.enabled if cur else True, previous_sha256=previous, previous_version=prev_version,
    )
    old_schema = stored_schema(ctx, cur.sha256) if cur else None
    values, _added, dropped = configschema.merge_schema_change(
        state.config.get(info.id, {}), info.config_schema, old_schema=old_schema)
    state.config[info.id] = values
    return [f"{info.id}: stored config key {key!r} is not in the new schema (kept)" for key in dropped]


def install_candidates(ctx: Context, candidates: list[Candidate], *, command: str = "install",
                       force: bool = False, dry_run: bool = False) -> Result:
    steps = [plan_step(ctx.env.load().plugins.get(c.info.id), c, force=force) for c in candidates]
    if dry_run:
        return _result(command, [s.to_action("planned") for s in steps], [])
    confirm_switches(ctx, steps)
    warnings: list[str] = []
    with ctx.env.transaction() as state:
        steps = [plan_step(state.plugins.get(c.info.id), c, force=force) for c in candidates]
        for step in steps:
            if step.action != "skip":
                warnings += apply_step(ctx, state, step)
    return _result(command, [s.to_action("done") for s in steps], warnings)


def _result(command: str, actions: list[Action], warnings: list[str]) -> Result:
    return Result(command, "actions", {"actions": [a.to_json() for a in actions]}, tuple(warnings))


@live.applies
def install(ctx: Context, specs: list[str], *, force: bool = False, pre: bool = False,
            dry_run: bool = False, requirements: str | None = None) -> Result:
    if requirements:
        if specs:
            raise UsageError("Give either SPECs or -r FILE, not both")
        from pathlib import Path

        from lbctl.ops import plugins_file

        return plugins_file.sync(ctx, Path(requirements), prune=False, dry_run=dry_run, command="install")
    if not specs:
        raise UsageError("Nothing to install: give a SPEC or -r FILE")
    return install_candidates(ctx, resolve_all(ctx, specs, pre=pre), force=force, dry_run=dry_run)
