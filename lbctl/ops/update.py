"""outdated and update: only marketplace installs are ever updated (spec §1), on any target."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lbctl import plan
from lbctl.context import Context
from lbctl.errors import NotUpdatableError, PreconditionError, UsageError
from lbctl.models import Action, Candidate, Record, Result
from lbctl.ops.common import apply, on, planned
from lbctl.ops.fleet import each
from lbctl.resolve import Resolver
from lbctl.specs import compare_versions
from lbctl.targets import open_targets
from lbctl.targets.base import Target


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


def outdated_report(target: Target, records: dict[str, Record], *, pre: bool = False) -> OutdatedReport:
    from lbctl.marketplace import fetch_many

    ordered = sorted(records.values(), key=lambda r: r.id)
    market = [r for r in ordered if r.source == "marketplace" and not r.pinned]
    others = [{"id": r.id, "source": r.source, "reason": plan.NOT_UPDATABLE.format(source=r.source)}
              for r in ordered if r.source != "marketplace"]
    pinned = [{"id": r.id, "source": r.source, "reason": _pinned_reason(r)}
              for r in ordered if r.source == "marketplace" and r.pinned]
    resolver = target.resolver
    fetched = fetch_many(market, lambda r: resolver.version(_spec(r.id, None), pre=pre))
    rows, errors = [], []
    for item in fetched:
        if item.error is not None:
            errors.append({**item.error.to_json(), "plugin": item.item.id})
        elif compare_versions(item.value, item.item.version) > 0:
            rows.append({"id": item.item.id, "version": item.item.version, "latest": item.value})
    warnings = tuple(f"{e['plugin']}: {e['message']}" for e in errors)
    return OutdatedReport(rows, others + pinned, warnings, tuple(errors))


def _pinned_reason(record: Record) -> str:
    return "pinned" + (f": {record.pin_reason}" if record.pin_reason else "")


def outdated(ctx: Context, *, exit_code: bool = False, pre: bool = False) -> Result:
    return each(ctx, "outdated", lambda target: _outdated(target, exit_code, pre))


def _outdated(target: Target, exit_code: bool, pre: bool) -> Result:
    report = outdated_report(target, target.records(), pre=pre)
    errors = report.errors
    if exit_code and report.outdated and not errors:
        ids = ", ".join(row["id"] for row in report.outdated)
        errors = ({"code": "outdated", "message": f"outdated: {ids}", "hint": "Run `lbctl update --all`.",
                   "plugin": None},)
    data = {"outdated": report.outdated, "not_updatable": report.not_updatable}
    return on(target, Result("outdated", "outdated", data, report.warnings, errors, 1 if errors else 0))


def _selected(records: dict[str, Record], ids: list[str], all_: bool, exclude: list[str],
              target: Target) -> tuple[list[Record], list[plan.Step]]:
    if bool(ids) == all_:
        raise UsageError("Name plugins to update, or pass --all (not both)")
    if all_:
        chosen = [r for r in sorted(records.values(), key=lambda r: r.id) if r.id not in exclude]
        skipped = [plan.update_skip(r) for r in chosen if r.source != "marketplace"]
        skipped += [plan.Step(r.id, "skip", r, reason=_pinned_reason(r), source=r.source)
                    for r in chosen if r.source == "marketplace" and r.pinned]
        return [r for r in chosen if r.source == "marketplace" and not r.pinned], skipped
    for pid in ids:
        record = records.get(pid)
        if record is None:
            raise target.not_installed(pid)
        if record.source != "marketplace":
            raise NotUpdatableError(
                f"{pid} is a {record.source} install and is never updated from the marketplace", plugin=pid,
                hint=f"To switch it to the marketplace: `lbctl install {pid}`.")
        if record.pinned:
            raise PreconditionError(f"{pid} is {_pinned_reason(record)}", plugin=pid,
                                    hint=f"Unpin it first: `lbctl unpin {pid}`.")
    return [records[pid] for pid in ids if pid not in exclude], []


def _prepare(resolver: Resolver, record: Record, to: str | None, pre: bool) -> Candidate | None:
    """The verified new package, or None when the installed version is already the one wanted."""
    spec = _spec(record.id, to)
    version = resolver.version(spec, pre=pre)
    if version == record.version and to is None:
        return None  # the newest is installed: nothing to download
    candidate = resolver.fetch(spec, version)
    if candidate.info.version == record.version and candidate.info.sha256 == record.sha256:
        return None
    return replace(candidate, spec=record.spec if to is None and record.spec else spec.raw)


def update(ctx: Context, ids: list[str], *, all_: bool = False, to: str | None = None, exclude: list[str] = (),
           pre: bool = False, dry_run: bool = False, start: bool = True) -> Result:
    if to is not None and (all_ or len(ids) != 1):
        raise UsageError("--to needs exactly one plugin id")
    if to is not None:
        _spec(ids[0], to)  # a bad --to is bad input (exit 2), not one plugin failing
    targets = open_targets(ctx)
    if not all_ and len(targets) > 1:
        raise UsageError("update ID… acts on one target; several targets take `update --all`")
    return each(ctx, "update", lambda target: _update(target, ids, all_, to, list(exclude), pre, dry_run, start),
                targets)


def _update(target: Target, ids: list[str], all_: bool, to: str | None, exclude: list[str], pre: bool,
            dry_run: bool, start: bool) -> Result:
    from lbctl.marketplace import fetch_many

    chosen, steps = _selected(target.records(), target.expand(ids), all_, exclude, target)
    resolver = target.resolver
    if chosen and not target.ctx.settings.offline:
        resolver.market  # noqa: B018 - one client for every worker thread, built before they start
    failed, errors = [], []
    for item in fetch_many(chosen, lambda r: _prepare(resolver, r, to, pre)):
        record = item.item
        if item.error is not None:
            failed.append(Action(record.id, "update", "failed", from_=record.version, source=record.source,
                                 reason=item.error.message))
            errors.append({**item.error.to_json(), "plugin": record.id})
        elif item.value is None:
            steps.append(plan.up_to_date(record))
        else:
            steps.append(plan.package_step(record, item.value, force=True))
    steps.sort(key=lambda s: s.id)
    if dry_run:
        result = planned("update", steps, target=target, failed=failed, errors=errors)
    else:
        result = apply("update", target, steps, start=start, failed=failed, errors=errors)
    actions = sorted(result.data["actions"], key=lambda a: a["id"])
    done = sum(a["action"] in plan.PACKAGE_ACTIONS and a["status"] in ("done", "planned") for a in actions)
    summary = f"{'would update' if dry_run else 'updated'} {done} of {len(chosen)}"
    return replace(result, data={**result.data, "actions": actions, "summary": summary})
