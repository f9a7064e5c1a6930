"""Issue 17 §4: `uninstall --purge` removes the record, the config and the stored data together or not at all, at
every system call. strace kills lbctl (SIGKILL, which nothing can defer) at each call that writes, syncs, renames
or removes a file, one run per call; after the next run of lbctl the environment must be exactly as before the
purge or exactly as after it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURE_ID
from hardening_support import (environment_snapshot, one_line_error, run_cli, run_injected, strace_usable,
                               syscall_counts)
from test_runtime_support import FAKE, start_host  # noqa: F401 - the fixture

# Every call that can change a file: SQLite writes with pwrite64 and syncs with fdatasync, state.json is written
# with write, synced with fsync and renamed into place; unlink removes temporary files and SQLite's journal.
SYSCALLS = ("pwrite64", "write", "fsync", "fdatasync", "rename", "unlink")
OTHER = "acme/other"


def store_rows(home: Path, rows: dict[str, int]) -> None:
    from lbctl.runtime.storage import Storage

    storage = Storage(home / "storage.db")
    try:
        for owner, count in rows.items():
            for i in range(count):
                storage.set("plugin", owner, f"k{i}", f"{owner} {i}".encode())
    finally:
        storage.close()


@pytest.fixture
def template(lbctl, fixture_lbpkg, tmp_path, home) -> Path:
    """An environment with the plugin to purge (config and 20 stored rows) and another that must be untouched."""
    from pkgfactory import make_lbpkg

    other = tmp_path / "other.lbpkg"
    other.write_bytes(make_lbpkg("acme", "other", "1.0.0", config=[{"name": "greeting", "type": "string"}]))
    assert lbctl("install", fixture_lbpkg, other).exit_code == 0
    for pid in (FIXTURE_ID, OTHER):
        assert lbctl("config", "set", pid, "greeting=kept").exit_code == 0
    store_rows(home, {FIXTURE_ID: 20, OTHER: 3})
    saved = tmp_path / "template"
    shutil.copytree(home, saved, symlinks=True)
    return saved


def fresh(template: Path, home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home, symlinks=True)


PURGE = ["uninstall", FIXTURE_ID, "--purge", "--yes", "--json"]


@pytest.mark.skipif(strace_usable() is not None, reason=str(strace_usable()))
def test_a_sigkill_at_any_system_call_of_a_purge_leaves_all_or_nothing(lbctl, template, home):
    before = environment_snapshot(home)
    assert run_cli(*PURGE).exit_code == 0
    after = environment_snapshot(home)
    state = json.loads((home / "state.json").read_text())
    assert FIXTURE_ID not in state["plugins"] and FIXTURE_ID not in state["config"] and OTHER in state["config"]
    assert "purging" not in state
    fresh(template, home)
    counts = syscall_counts(PURGE, SYSCALLS)
    assert counts["pwrite64"] >= 5 and counts["rename"] >= 1, counts

    outcomes: dict[str, list[str]] = {"before": [], "after": []}
    started = time.monotonic()
    for syscall in SYSCALLS:
        for when in range(1, counts[syscall] + 1):
            fresh(template, home)
            killed = run_injected(PURGE, syscall, when, "signal=SIGKILL")
            point = f"{syscall} #{when} (exit {killed.exit_code})"
            assert killed.exit_code in (0, -9), f"{point}: {killed.output}"
            follow = lbctl("list", "--json")  # the next run: it completes a purge the killed one committed
            assert follow.exit_code == 0, f"{point}: {follow.output}"
            found = environment_snapshot(home)
            assert found in (before, after), f"{point}: in-between state {found}"
            outcomes["before" if found == before else "after"].append(point)
    seconds = time.monotonic() - started

    trials = sum(counts.values())
    print(f"{trials} crash points in {seconds:.0f} s: {len(outcomes['before'])} before, {len(outcomes['after'])} "
          f"after; the first 'after': {outcomes['after'][:1]}")
    assert outcomes["before"] and outcomes["after"], outcomes  # the kills landed on both sides of the commit


@pytest.mark.skipif(strace_usable() is not None, reason=str(strace_usable()))
def test_the_runtime_host_completes_a_purge_before_it_serves_storage(lbctl, template, home, tmp_path, start_host):
    """A run killed right after the commit leaves the rows and a `purging` entry; the runtime host (started on
    its own, without a command that would have completed the purge first) deletes them before it serves storage."""
    count = syscall_counts(PURGE, ("pwrite64",))["pwrite64"]
    for when in range(1, count + 1):  # the first write of SQLite's commit after state.json was replaced
        fresh(template, home)
        killed = run_injected(PURGE, "pwrite64", when, "signal=SIGKILL")
        if json.loads((home / "state.json").read_text()).get("purging"):
            break
    assert killed.exit_code == -9 and json.loads(environment_snapshot(home))[2] == [FIXTURE_ID], killed.output
    assert len(json.loads(environment_snapshot(home))[3]) == 23  # the rows are still there

    host = start_host({"LBCTL_RUNTIME_COMMAND": f"{sys.executable} {FAKE}", "FAKE_RUNTIME_LOG": str(tmp_path / "log")})
    host.wait_for(lambda: host.client.is_up(), what="the host")

    rows = json.loads(environment_snapshot(home))[3]
    assert sorted({row[1] for row in rows}) == [OTHER] and len(rows) == 3, rows
    assert "purging" not in json.loads((home / "state.json").read_text())


def test_a_purge_with_the_storage_busy_changes_nothing(lbctl, template, home, monkeypatch):
    import sqlite3

    monkeypatch.setenv("LBCTL_LOCK_TIMEOUT", "0.2")
    before = environment_snapshot(home)
    holder = sqlite3.connect(home / "storage.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process (a runtime host) writing
    try:
        run = lbctl(*PURGE[:-1])
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    one_line_error(run, 6)
    assert "storage" in run.stderr, run.output
    assert environment_snapshot(home) == before
