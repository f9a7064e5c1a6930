"""Several targets at once (spec §8): at most --jobs in parallel, one part per target, the worst exit code; a
target that is down, slow or failing does not stop the others, and holds its worker no longer than its own
requests' deadlines (--timeout).

Memory stays with what the results need: each target is closed (its connections and cached answers let go) as
soon as its part is made, so a fleet of a thousand instances holds a thousand small results, not a thousand
clients.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from lbctl.errors import CommandInterruptedError, LbctlError
from lbctl.models import Result

# After a Ctrl-C, how long the targets under way get to stop and say what they did (a LangBot target gives its
# steps under way 10 s to finish and be read back).
STOP_GRACE = 15.0

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.targets.base import Target


def each(ctx: Context, command: str, run: Callable[[Target], Result], targets: list[Target] | None = None) -> Result:
    """`run` on every target of the command (or on `targets` when the caller opened them already)."""
    if targets is None:
        from lbctl.targets import open_targets

        targets = open_targets(ctx)
    if len(targets) == 1:
        try:
            return run(targets[0])
        finally:
            targets[0].close()
    try:
        parts = _run_all(ctx, command, run, targets)
    except KeyboardInterrupt as exc:
        # Each target that was under way has said what it did; one that had not started did nothing.
        results = getattr(exc, "results", None) or [None] * len(targets)
        begun = getattr(exc, "begun", None)
        stopped = CommandInterruptedError("interrupted")
        stopped.partial = _fleet(command, [  # type: ignore[attr-defined]
            item.value if item is not None else _part(command, target, _unreported(target, begun, index))
            for index, (target, item) in enumerate(zip(targets, results))])
        raise stopped from None
    return _fleet(command, parts)


def _unreported(target: Target, begun: set[int] | None, index: int) -> CommandInterruptedError:
    if begun is not None and index not in begun:
        return CommandInterruptedError(f"interrupted before {target.name} was started: nothing was sent to it")
    return CommandInterruptedError(f"interrupted: {target.name} did not say what it did within {STOP_GRACE:g} s",
                                   hint=f"See `lbctl --target {target.name} list`.")


def _fleet(command: str, parts: list[Result]) -> Result:
    doc = {"targets": [{"target": p.target, "status": p.status, "exit_code": p.exit_code, "data": p.data,
                        "warnings": list(p.warnings), "errors": list(p.errors)} for p in parts]}
    worst = max(p.exit_code for p in parts)
    errors = tuple({**e, "message": f"{p.target}: {e['message']}"} for p in parts for e in p.errors)
    return Result(command, "fleet", doc, errors=errors, exit_code=worst, parts=tuple(parts))


def _run_all(ctx: Context, command: str, run: Callable[[Target], Result], targets: list[Target]) -> list[Result]:
    from lbctl.marketplace import fetch_many

    def one(target: Target) -> Result:
        try:
            return _part(command, target, run(target))
        except LbctlError as exc:
            return _part(command, target, exc)
        finally:
            target.close()

    # One spinner for the fleet: a spinner per target and wait would fill the terminal.
    progress, ctx.progress = ctx.progress, None
    try:
        with progress(f"{command}: {len(targets)} targets") if progress else _nothing(), _fewer_collections():
            done = fetch_many(targets, one, max_workers=ctx.settings.jobs, grace=STOP_GRACE)
    finally:
        ctx.progress = progress
    return [item.value for item in done]  # type: ignore[misc]  # `one` raises no LbctlError


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


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector runs after every 700 new objects, and a fleet's answers make millions of
    short-lived ones that reference counting frees anyway: a no-op sync to 1,000 farm instances ran it ~380 times
    for 0.28-0.34 s of its 3.3-3.9 s of CPU, with this threshold 77 times for 0.12-0.18 s."""
    import gc

    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _nothing():
    from contextlib import nullcontext

    return nullcontext()
