"""Several targets at once (spec §8): in parallel, one section each, the worst exit code; one target that
is down does not stop the others."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lbctl.errors import LbctlError
from lbctl.models import Result

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.targets.base import Target


def each(ctx: Context, command: str, run: Callable[[Target], Result], targets: list[Target] | None = None) -> Result:
    """`run` on every target of the command (or on `targets` when the caller opened them already)."""
    if targets is None:
        from lbctl.targets import open_targets

        targets = open_targets(ctx)
    if len(targets) == 1:
        return run(targets[0])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="lbctl-target") as pool:
        outcomes = list(pool.map(lambda target: _capture(run, target), targets))
    parts = tuple(_part(command, target, outcome) for target, outcome in zip(targets, outcomes))
    doc = {"targets": [{"target": p.target, "status": p.status, "exit_code": p.exit_code, "data": p.data,
                        "warnings": list(p.warnings), "errors": list(p.errors)} for p in parts]}
    worst = max(p.exit_code for p in parts)
    errors = tuple({**e, "message": f"{p.target}: {e['message']}"} for p in parts for e in p.errors)
    return Result(command, "fleet", doc, errors=errors, exit_code=worst, parts=parts)


def _capture(run: Callable[[Target], Result], target: Target) -> Result | LbctlError:
    try:
        return run(target)
    except LbctlError as exc:
        return exc


def _part(command: str, target: Target, outcome: Result | LbctlError) -> Result:
    if isinstance(outcome, LbctlError):
        first = outcome.to_json()
        partial: Result | None = getattr(outcome, "partial", None)  # what it had changed when it stopped
        if partial is None:
            return Result(command, "error", None, errors=(first,), exit_code=int(outcome.exit_code),
                          target=target.name)
        errors = (first, *(e for e in partial.errors if e.get("message") != first["message"]))
        return Result(command, partial.kind, partial.data, partial.warnings, errors, int(outcome.exit_code),
                      target=target.name)
    return Result(outcome.command, outcome.kind, outcome.data, outcome.warnings, outcome.errors, outcome.exit_code,
                  outcome.text, target=target.name)
