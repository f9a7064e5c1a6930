"""Issue 11: bench/stress_kill.py in CI, bounded: SIGKILL, SIGINT and SIGTERM at random moments of install,
update --all, sync, config set and uninstall --purge; every trial leaves the state before or after the command,
nothing behind after the next run, and no exit 10 (the script's docstring says exactly what is checked).
Under load it takes longer, never fewer trials: the budget only stops new trials once 15 are done."""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import stress_kill  # noqa: E402


def test_kills_and_interrupts_at_random_moments_leave_no_trace(tmp_path):
    out = io.StringIO()

    tallies = stress_kill.run(trials=2, budget=120, seed=20251201, out=out, min_trials=15)

    report = out.getvalue()
    assert sum(t.trials for t in tallies.values()) >= 15, report
    assert all(t.ok for t in tallies.values()), report
    outcomes = sum((t.outcomes for t in tallies.values()), start=stress_kill.Counter())
    assert outcomes["before"] and outcomes["after"], report  # the kills did land on both sides of the commit
