"""Issue 17 §2 on the local target: an install of several that is interrupted, or fails, half way reports every
action with what the environment holds afterwards. The environment changes in one transaction: a step is `done`
only once it is committed; a Ctrl-C during the transaction takes effect after the commit."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from hardening_support import finish, handler_installed, spawn
from pkgfactory import make_lbpkg


def packages(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"acme-p{i}-1.0.0.lbpkg"
        path.write_bytes(make_lbpkg("acme", f"p{i}", "1.0.0", extra_files={"blob.bin": os.urandom(200_000)}))
        paths.append(path)
    return paths


def installed(lbctl) -> set[str]:
    run = lbctl("list", "--json")
    assert run.exit_code == 0, run.output
    return {p["id"] for p in run.json["data"]["plugins"]}


def store_calls(monkeypatch, on_call: int, action, every: int = 0) -> None:
    """Run `action` when the environment stores its `on_call`-th package (inside the transaction), and every
    `every` packages after that."""
    from lbctl.state import Environment

    store = Environment.store_package
    calls = []

    def storing(self, source, sha256):
        calls.append(sha256)
        if len(calls) == on_call or (every and len(calls) > on_call and (len(calls) - on_call) % every == 0):
            action()
        return store(self, source, sha256)

    monkeypatch.setattr(Environment, "store_package", storing)


def test_ctrl_c_inside_the_transaction_of_an_install_of_five_reports_all_five_committed(lbctl, monkeypatch, tmp_path):
    paths = packages(tmp_path, 5)
    store_calls(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGINT))  # a real Ctrl-C, mid-transaction

    run = lbctl("install", *map(str, paths), "--json")

    assert run.exit_code == 130, run.output
    doc = run.json
    assert (doc["status"], doc["errors"][0]["code"]) == ("error", "interrupted"), doc
    assert [(a["id"], a["status"]) for a in doc["data"]["actions"]] == [(f"acme/p{i}", "done") for i in range(5)]
    assert installed(lbctl) == {f"acme/p{i}" for i in range(5)}


def test_a_failure_inside_the_transaction_reports_no_step_done_and_changes_nothing(lbctl, monkeypatch, tmp_path):
    paths = packages(tmp_path, 5)

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "home"))

    store_calls(monkeypatch, 3, disk_full, every=3)

    run = lbctl("install", *map(str, paths), "--json")

    assert run.exit_code == 6, run.output
    statuses = [(a["id"], a["status"]) for a in run.json["data"]["actions"]]
    assert statuses == [("acme/p0", "failed"), ("acme/p1", "failed"), ("acme/p2", "failed"), ("acme/p3", "planned"),
                        ("acme/p4", "planned")], run.output
    assert "stopped before it was committed" in run.json["data"]["actions"][0]["reason"], run.output
    assert installed(lbctl) == set()
    table = lbctl("install", *map(str, paths))  # the same in a table: every line, then the error
    assert table.exit_code == 6 and len(table.stdout.splitlines()) == 5, table.output
    assert table.stdout.splitlines()[0].startswith("failed to install acme/p0"), table.output


@pytest.mark.parametrize("trial", range(4))
def test_ctrl_c_at_any_moment_of_an_install_of_twelve_reports_what_the_environment_holds(tmp_path, home, trial):
    """A real SIGINT to a real lbctl at a random moment of its run: whatever it says it did is so."""
    paths = packages(tmp_path, 12)
    clean = finish(spawn(["--home", str(tmp_path / "measure"), "install", *map(str, paths), "--json"]), timeout=120)
    assert clean.exit_code == 0, clean.output
    proc = spawn(["install", *map(str, paths), "--json"])
    started = time.monotonic()
    while not handler_installed(proc.pid) and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(random.Random(trial).uniform(0.0, 1.0) * clean.seconds)
    proc.send_signal(signal.SIGINT)
    run = finish(proc, timeout=120, started=started)

    listed = finish(spawn(["list", "--json"]), timeout=60)
    held = {p["id"] for p in json.loads(listed.stdout)["data"]["plugins"]}
    doc = json.loads(run.stdout)
    if run.exit_code == 0:
        assert held == {f"acme/p{i}" for i in range(12)}
        return
    assert run.exit_code == 130, run.output
    actions = (doc["data"] or {}).get("actions")
    if actions is None:  # interrupted before anything was planned: nothing changed
        assert held == set(), run.output
    else:
        assert {a["id"] for a in actions if a["status"] == "done"} == held, run.output
