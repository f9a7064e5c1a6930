"""outdated and update: only marketplace installs are ever updated (spec §1)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lbctl.context import Context
from lbctl.errors import NotInstalledError, NotUpdatableError, UsageError
from lbctl.models import Action, Record, Result
from lbctl.ops.install import Step, apply_step, plan_step
from lbctl.ops.resolve import Candidate
from lbctl.state import State
from lbctl.ops import live

NOT_UPDATABLE = "{source} install: only marketplace installs are updated"


@dataclass(frozen=True)
class OutdatedReport:
    outdated: list[dict]
    not_updatable: list[dict]
    warnings: tuple[str, ...] = ()
    errors: tuple[dict, ...] = ()


def _spec(plugin_id: str, to: str | None):
    from lbctl.specs import marketplace_spec, parse_spec

    spec = parse_spec(to) if to and "/" in to else marketplace_spec(plugin_id, to or "")
    if spec.kind != "marketplace" or spec.id != plugin_id:
        raise UsageError(f"--to must be a version spec for {plugin_id}, not {to!r}")
    return spec


def _newest(ctx: Context, record: Record, *, to: str | None = None, pre: bool = False) -> str:
    from lbctl.ops.remote import resolve_version

    return resolve_version(ctx, _spec(record.id, to), pre=pre)


def outdated_report(ctx: Context, state: State, *, pre: bool = False) -> OutdatedReport:
    from lbctl.marketplace import fetch_many

    market = [r for r in state.plugins.values() if r.source == "marketplace"]
    others = [{"id": r.id, "source": r.source, "reason": NOT_UPDATABLE.format(source=r.source)}
              for r in sorted(state.plugins.values(), key=lambda r: r.id) if r.source != "marketplace"]
    fetched = fetch_many(sorted(market, key=lambda r: r.id), lambda r: _newest(ctx, r, pre=pre))
    rows, errors = [], []
    for item in fetched:
        if item.error is not None:
            errors.append({**item.error.to_json(), "plugin": item.item.id})
        elif _newer(item.value, item.item.version):
            rows.append({"id": item.item.id, "version": item.item.version, "latest": item.value})
    warnings = tuple(f"{e['plugin']}: {e['message']}" for e in errors)
    return OutdatedReport(rows, others, warnings, tuple(errors))


def _newer(latest: str | None, installed: str) -> bool:
    from lbctl.ops.install import compare_versions

    return latest is not None and compare_versions(latest, installed) > 0


def outdated(ctx: Context, *, exit_code: bool = False, pre: bool = False) -> Result:
    report = outdated_report(ctx, ctx.env.load(), pre=pre)
    code = 1 if (report.errors or (exit_code and report.outdated)) else 0
    data = {"outdated": report.outdated, "not_updatable": report.not_updatable}
    return Result("outdated", "outdated", data, report.warnings, report.errors, code)


def _targets(state: State, ids: list[str], all_: bool, exclude: list[str]) -> tuple[list[Record], list[Action]]:
    if bool(ids) == all_:
        raise UsageError("Name plugins to update, or pass --all (not both)")
    if all_:
        records = [r for r in sorted(state.plugins.values(), key=lambda r: r.id) if r.id not in exclude]
        skipped = [Action(r.id, "skip", "skipped", from_=r.version, source=r.source,
                          reason=NOT_UPDATABLE.format(source=r.source)) for r in records if r.source != "marketplace"]
        return [r for r in records if r.source == "marketplace"], skipped
    for pid in ids:
        record = state.plugins.get(pid)
        if record is None:
            raise NotInstalledError(f"{pid} is not installed", plugin=pid)
        if record.source != "marketplace":
            raise NotUpdatableError(
                f"{pid} is a {record.source} install and is never updated from the marketplace", plugin=pid,
                hint=f"To switch it to the marketplace: `lbctl install {pid}`.")
    return [state.plugins[pid] for pid in ids if pid not in exclude], []


def _prepare(ctx: Context, record: Record, to: str | None, pre: bool) -> Candidate | None:
    """The verified new package, or None when the installed version is already the one wanted."""
    from lbctl.ops.remote import resolve

    spec = _spec(record.id, to)
    candidate = resolve(ctx, spec, pre=pre)
    if candidate.info.version == record.version and candidate.info.sha256 == record.sha256:
        return None
    spec_text = record.spec if to is None and record.spec else spec.raw
    return replace(candidate, spec=spec_text)


@live.applies
def update(ctx: Context, ids: list[str], *, all_: bool = False, to: str | None = None,
           exclude: list[str] = (), pre: bool = False, dry_run: bool = False) -> Result:
    from lbctl.marketplace import fetch_many

    if to is not None and (all_ or len(ids) != 1):
        raise UsageError("--to needs exactly one plugin id")
    if to is not None:
        _spec(ids[0], to)  # a bad --to is bad input (exit 2), not one plugin failing
    records, skipped = _targets(ctx.env.load(), ids, all_, list(exclude))
    if records and not ctx.settings.offline:
        ctx.market  # noqa: B018 - one client for every worker thread, built before they start
    fetched = fetch_many(records, lambda r: _prepare(ctx, r, to, pre))
    steps, actions, errors = [], list(skipped), []
    for item in fetched:
        record = item.item
        if item.error is not None:
            actions.append(Action(record.id, "update", "failed", from_=record.version, source=record.source,
                                  reason=item.error.message))
            errors.append({**item.error.to_json(), "plugin": record.id})
        elif item.value is None:
            actions.append(Action(record.id, "skip", "skipped", from_=record.version, to=record.version,
                                  source=record.source, reason="up to date"))
        else:
            steps.append(plan_step(record, item.value, force=True))
    warnings = _apply(ctx, steps, dry_run)
    actions += [s.to_action("planned" if dry_run else "done") for s in steps]
    return _result(records, actions, errors, warnings, dry_run)


def _apply(ctx: Context, steps: list[Step], dry_run: bool) -> list[str]:
    warnings: list[str] = []
    if dry_run or not steps:
        return warnings
    with ctx.env.transaction() as state:
        for step in steps:
            current = state.plugins.get(step.candidate.info.id)
            if current is not None:
                warnings += apply_step(ctx, state, plan_step(current, step.candidate, force=True))
    return warnings


def _result(records: list[Record], actions: list[Action], errors: list[dict], warnings: list[str],
            dry_run: bool) -> Result:
    actions.sort(key=lambda a: a.id)
    done = sum(a.action in ("update", "downgrade", "reinstall") and a.status in ("done", "planned") for a in actions)
    verb = "would update" if dry_run else "updated"
    data = {"actions": [a.to_json() for a in actions], "summary": f"{verb} {done} of {len(records)}"}
    return Result("update", "actions", data, tuple(warnings), tuple(errors), 1 if errors else 0)

