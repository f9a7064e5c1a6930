"""What every changing use case shares: confirming provenance switches and turning a plan into a Result."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lbctl.errors import ConfirmationNeededError, UsageError
from lbctl.models import Action, Result

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.plan import Step
    from lbctl.targets.base import Applied, Target


def require_ids(ids: list[str]) -> None:
    if not ids:
        raise UsageError("Name at least one plugin id")


def confirm_switches(ctx: Context, steps: list[Step]) -> None:
    """Ask before a step changes where a plugin comes from, or moves a pinned plugin to another version."""
    for step in steps:
        message = _switch(step) or _unpin(step)
        if message and not (ctx.settings.yes or ctx.confirm(message)):
            raise ConfirmationNeededError(f"Not replacing {step.id}: not confirmed",
                                          hint="Pass --yes to confirm.", plugin=step.id)


def _switch(step: Step) -> str | None:
    if not step.switches_provenance:
        return None
    cur, new = step.current.source, step.candidate.source  # type: ignore[union-attr]
    note = " A local install no longer receives updates." if new != "marketplace" else ""
    return f"{step.id} is a {cur} install; replace it with the {new} package?{note}"


def _unpin(step: Step) -> str | None:
    cur, cand = step.current, step.candidate
    if cur is None or cand is None or not cur.pinned or not step.changes or cand.info.version == cur.version:
        return None
    why = f" ({cur.pin_reason})" if cur.pin_reason else ""
    return f"{step.id} is pinned at {cur.version}{why}; install {cand.info.version} anyway?"


def planned(command: str, steps: list[Step], *, target: Target | None = None, failed: list[Action] = (),
            errors: list[dict] = ()) -> Result:
    result = actions_result(command, [*failed, *(s.action_line("planned") for s in steps)], errors=errors)
    return on(target, result) if target is not None else result


def apply(command: str, target: Target, steps: list[Step], *, start: bool = True, failed: list[Action] = (),
          errors: list[dict] = ()) -> Result:
    """Apply a plan and report it. A single change that failed raises its own error (its exit code);
    in a batch, failures make the status `partial` (exit 1). An apply that stopped half way (Ctrl-C, LangBot
    gone, the key refused) raises its error with `partial`: the Result of every action and its true status."""
    try:
        applied: Applied = target.apply(steps, start=start) if any(s.changes for s in steps) else _nothing(steps)
    except BaseException as exc:
        done: Applied | None = getattr(exc, "applied", None)
        if done is not None:
            exc.partial = _result(command, target, done, failed, errors)  # type: ignore[attr-defined]
        raise
    result = _result(command, target, applied, failed, errors)
    if applied.failures and len([s for s in steps if s.changes]) == 1 and not failed:
        error = applied.failures[0]
        error.partial = result  # type: ignore[attr-defined]
        raise error
    return result


def _result(command: str, target: Target, applied: Applied, failed: list[Action], errors: list[dict]) -> Result:
    data = {"live": applied.live} if applied.live is not None else {}
    all_errors = [*errors, *applied.errors]
    return on(target, actions_result(command, [*failed, *applied.actions], applied.warnings, all_errors, extra=data))


def _nothing(steps: list[Step]) -> Applied:
    from lbctl.targets.base import Applied

    return Applied(actions=[s.action_line("done") for s in steps])


def actions_result(command: str, actions: list[Action], warnings: list[str] = (), errors: list[dict] = (),
                   *, extra: dict | None = None) -> Result:
    data = {"actions": [a.to_json() for a in actions], **(extra or {})}
    return Result(command, "actions", data, tuple(warnings), tuple(errors), 1 if errors else 0)


def on(target: Target, result: Result) -> Result:
    """`result` marked as `target`'s: the renderer names a target other than `local`, and JSON `data` gets a
    `target` field."""
    data = {**result.data, "target": target.name} if isinstance(result.data, dict) else result.data
    return replace(result, data=data, target=target.name)
