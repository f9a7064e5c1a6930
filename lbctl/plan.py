"""Plans: what to change on a target, as a list of steps. Pure: no I/O, no target, unit-tested with tables.

A step is one `data.actions` line of spec §6 before it happens. Use cases build steps from the target's
records and the resolved candidates, then hand them to `target.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from lbctl.models import Action, Candidate, Record

if TYPE_CHECKING:
    from lbctl.plugins_file import Entry

PACKAGE_ACTIONS = frozenset({"install", "reinstall", "update", "downgrade", "rollback"})
NOT_UPDATABLE = "{source} install: only marketplace installs are updated"
PREVIOUS_FIELDS = ("previous_sha256", "previous_version", "previous_source", "previous_spec", "previous_origin")


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    current: Record | None = None
    candidate: Candidate | None = None
    config: dict | None = None  # `config`: the values to set (merged into the stored ones unless `replace`)
    replace: bool = False
    enabled: bool | None = None
    reason: str | None = None
    source: str | None = None
    to: str | None = None

    @property
    def changes(self) -> bool:
        return self.action != "skip"

    @property
    def from_(self) -> str | None:
        return self.current.version if self.current else None

    @property
    def switches_provenance(self) -> bool:
        cur, cand = self.current, self.candidate
        return (cur is not None and cand is not None and self.changes
                and (cur.source == "marketplace") != (cand.source == "marketplace"))

    def action_line(self, status: str, reason: str | None = None) -> Action:
        to = self.candidate.info.version if self.candidate else self.to
        source = self.candidate.source if self.candidate else self.source
        from_ = None if self.action in ("enable", "disable", "config", "purge", "pin", "unpin") else self.from_
        return Action(self.id, self.action, "skipped" if not self.changes else status, to=to, from_=from_,
                      source=source, reason=reason or self.reason)


def package_step(current: Record | None, cand: Candidate, *, force: bool = False) -> Step:
    from lbctl.specs import compare_versions

    if current is None:
        return Step(cand.id, "install", None, cand)
    order = compare_versions(cand.info.version, current.version)
    if order:
        return Step(cand.id, "update" if order > 0 else "downgrade", current, cand)
    if current.sha256 == cand.info.sha256 and current.source == cand.source and not force:
        return Step(cand.id, "skip", current, cand, reason="already installed")
    return Step(cand.id, "reinstall", current, cand)


def install(records: dict[str, Record], candidates: Iterable[Candidate], *, force: bool = False) -> list[Step]:
    return [package_step(records.get(c.id), c, force=force) for c in candidates]


def config_step(record: Record, values: dict, reason: str, *, replace: bool = False) -> Step:
    return Step(record.id, "config", record, config=values, replace=replace, reason=reason, source=record.source,
                to=record.version)


def enable_step(record: Record, enabled: bool) -> Step:
    verb = "enable" if enabled else "disable"
    if record.enabled == enabled:
        return Step(record.id, "skip", record, reason=f"already {verb}d", to=record.version)
    return Step(record.id, verb, record, enabled=enabled, source=record.source, to=record.version)


def pin_step(record: Record, pinned: bool, reason: str | None = None) -> Step:
    if record.pinned == pinned and (not pinned or record.pin_reason == reason):
        return Step(record.id, "skip", record, reason="already pinned" if pinned else "not pinned",
                    source=record.source, to=record.version)
    return Step(record.id, "pin" if pinned else "unpin", record, reason=reason, source=record.source,
                to=record.version)


def uninstall(records: dict[str, Record], ids: list[str], *, purge: bool) -> list[Step]:
    steps = []
    for pid in ids:
        record = records.get(pid)
        if record is not None:
            steps.append(Step(pid, "uninstall", record, source=record.source))
        if purge:
            steps.append(Step(pid, "purge", record, reason="config and stored data deleted"))
    return steps


def sync(records: dict[str, Record], entries: list[Entry], candidates: dict[str, Candidate],
         configs: dict[str, dict | None], *, prune: bool) -> list[Step]:
    """Steps that make a target match a plugins file.

    `candidates` holds a package for each entry the target does not already satisfy; `configs` the validated
    values to set for each entry whose config must change (missing or None: leave it).
    """
    steps = [package_step(records.get(pid), cand, force=True) for pid, cand in candidates.items()]
    for entry in entries:
        record = records.get(entry.id)
        after = _after(record, candidates.get(entry.id))
        if after.enabled != entry.enabled:
            steps.append(enable_step(after, entry.enabled))
        if after.pinned != entry.pinned or (entry.pin_reason and after.pin_reason != entry.pin_reason):
            reason = (entry.pin_reason or "pinned by a plugins file") if entry.pinned else None
            steps.append(pin_step(after, entry.pinned, reason))
        if configs.get(entry.id) is not None:
            steps.append(config_step(after, configs[entry.id], f"set {', '.join(entry.config)}"))
    if prune:
        listed = {e.id for e in entries}
        steps += [Step(pid, "uninstall", records[pid], source=records[pid].source, reason="not in the plugins file")
                  for pid in sorted(records) if pid not in listed]
    return steps


def _after(record: Record | None, cand: Candidate | None) -> Record:
    """The record as it will be once the package step (if any) is applied."""
    if cand is None:
        assert record is not None
        return record
    return Record(cand.id, cand.info.version, cand.source, cand.info.sha256, "",
                  enabled=record.enabled if record else True, pinned=record.pinned if record else False,
                  pin_reason=record.pin_reason if record else None)


def update_skip(record: Record) -> Step:
    return Step(record.id, "skip", record, reason=NOT_UPDATABLE.format(source=record.source), source=record.source)


def up_to_date(record: Record) -> Step:
    return Step(record.id, "skip", record, reason="up to date", source=record.source, to=record.version)


def previous_fields(current: Record | None, new_sha256: str) -> dict:
    """What a new install keeps of the record it replaces, for `rollback`."""
    if current is None:
        return {}
    if current.sha256 == new_sha256:
        return {k: getattr(current, k) for k in PREVIOUS_FIELDS}
    return {"previous_sha256": current.sha256, "previous_version": current.version,
            "previous_source": current.source, "previous_spec": current.spec, "previous_origin": current.origin}
