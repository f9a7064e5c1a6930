"""pin / unpin / rollback (spec §4), bare plugin names and "did you mean", and an all-or-nothing purge."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tree_snapshot
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg

ID = "acme/echo"


@pytest.fixture
def market(monkeypatch):
    with FakeMarket() as fake:
        monkeypatch.setenv("LBCTL_INDEX_URL", fake.url)
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            fake.add(make_lbpkg("acme", "echo", version))
        yield fake


def ok(run, code: int = 0):
    assert run.exit_code == code, run.output
    return run


def row(lbctl, plugin_id: str = ID) -> dict:
    return ok(lbctl("show", plugin_id, "--json")).json["data"]["plugin"]


# --- pin -------------------------------------------------------------------------------------------------


def test_a_pinned_plugin_keeps_its_version_through_update_all_and_outdated(lbctl, market):
    ok(lbctl("install", f"{ID}==1.0.0"))
    pinned = ok(lbctl("pin", ID, "--reason", "2.x breaks our bot", "--json")).json
    assert [(a["action"], a["status"], a["reason"]) for a in pinned["data"]["actions"]] == [
        ("pin", "done", "2.x breaks our bot")]

    report = ok(lbctl("outdated", "--json")).json["data"]
    assert report["outdated"] == []
    assert report["not_updatable"] == [{"id": ID, "source": "marketplace", "reason": "pinned: 2.x breaks our bot"}]
    update = ok(lbctl("update", "--all", "--json")).json["data"]
    assert [(a["action"], a["reason"]) for a in update["actions"]] == [("skip", "pinned: 2.x breaks our bot")]
    refused = ok(lbctl("update", ID, "--json"), 6).json["errors"][0]
    assert "unpin" in refused["hint"]
    assert row(lbctl)["version"] == "1.0.0" and row(lbctl)["pinned"] is True

    ok(lbctl("unpin", ID))
    ok(lbctl("update", "--all"))
    assert row(lbctl)["version"] == "2.0.0" and row(lbctl)["pinned"] is False


def test_installing_another_version_of_a_pinned_plugin_asks_first(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    ok(lbctl("pin", ID))
    before = tree_snapshot(home)

    asked = ok(lbctl("install", f"{ID}==1.1.0", "--json"), 2).json["errors"][0]
    assert asked["code"] == "confirmation_needed" and "pinned at 1.0.0" in asked["message"]
    assert tree_snapshot(home) == before
    ok(lbctl("install", f"{ID}==1.1.0", "--yes"))
    assert (row(lbctl)["version"], row(lbctl)["pinned"]) == ("1.1.0", True)


def test_freeze_writes_pinned_and_sync_honours_it(lbctl, market, tmp_path, monkeypatch):
    ok(lbctl("install", f"{ID}==1.1.0"))
    ok(lbctl("pin", ID))
    frozen = ok(lbctl("freeze")).stdout
    assert "pinned = true" in frozen
    (tmp_path / "plugins.toml").write_text(frozen)

    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "other-home"))
    ok(lbctl("sync", str(tmp_path / "plugins.toml")))
    assert (row(lbctl)["version"], row(lbctl)["pinned"]) == ("1.1.0", True)
    assert ok(lbctl("sync", str(tmp_path / "plugins.toml"), "--json")).json["data"]["actions"] == []



def test_freeze_writes_the_pin_reason_and_sync_keeps_it(lbctl, market, tmp_path, monkeypatch):
    ok(lbctl("install", f"{ID}==1.1.0"))
    ok(lbctl("pin", ID, "--reason", "2.x breaks our bot"))
    frozen = ok(lbctl("freeze")).stdout
    assert 'pinned = true\npin_reason = "2.x breaks our bot"\n' in frozen, frozen
    assert ok(lbctl("freeze", "--json")).json["data"]["plugins"][0]["pin_reason"] == "2.x breaks our bot"
    file = tmp_path / "plugins.toml"
    file.write_text(frozen)

    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "other-home"))
    synced = ok(lbctl("sync", str(file), "--json")).json["data"]["actions"]
    assert ("pin", "done", "2.x breaks our bot") in [(a["action"], a["status"], a["reason"]) for a in synced]
    assert ok(lbctl("outdated", "--json")).json["data"]["not_updatable"] == [
        {"id": ID, "source": "marketplace", "reason": "pinned: 2.x breaks our bot"}]
    assert ok(lbctl("sync", str(file), "--json")).json["data"]["actions"] == []

    # A new reason in the file is applied; a file without one leaves the target's reason alone.
    file.write_text(frozen.replace("2.x breaks our bot", "waiting for 2.1"))
    ok(lbctl("sync", str(file)))
    assert ok(lbctl("outdated", "--json")).json["data"]["not_updatable"][0]["reason"] == "pinned: waiting for 2.1"
    file.write_text(frozen.replace('pin_reason = "2.x breaks our bot"\n', ""))
    assert ok(lbctl("sync", str(file), "--json")).json["data"]["actions"] == []


def test_a_pin_reason_without_a_pin_is_refused_with_its_line(lbctl, market, tmp_path, home):
    file = tmp_path / "plugins.toml"
    file.write_text(f'[[plugin]]\nid = "{ID}"\npin_reason = "why"\n')
    run = ok(lbctl("sync", str(file), "--json"), 2)
    assert run.json["errors"][0]["code"] == "invalid_plugins_file"
    assert f"{file}:1" in run.json["errors"][0]["message"] and "pinned = true" in run.json["errors"][0]["message"]


# --- rollback ----------------------------------------------------------------------------------------------


def test_rollback_puts_back_the_replaced_package_and_keeps_config(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    first = row(lbctl)
    ok(lbctl("config", "set", ID, "greeting=kept"))
    ok(lbctl("update", ID))
    assert row(lbctl)["version"] == "2.0.0"

    planned = ok(lbctl("rollback", ID, "--dry-run", "--json")).json["data"]["actions"]
    assert [(a["action"], a["from"], a["to"], a["status"]) for a in planned] == [("rollback", "2.0.0", "1.0.0", "planned")]
    market.close()  # the old package comes from the environment's own store, not the network
    done = ok(lbctl("rollback", ID, "--json")).json["data"]["actions"]
    assert [(a["action"], a["to"], a["status"]) for a in done] == [("rollback", "1.0.0", "done")]
    back = row(lbctl)
    assert (back["version"], back["sha256"], back["source"], back["spec"]) == (
        "1.0.0", first["sha256"], "marketplace", first["spec"])
    assert {r["name"]: r["value"] for r in back["config"]}["greeting"] == "kept"
    ok(lbctl("rollback", ID))  # a second rollback goes forward again
    assert row(lbctl)["version"] == "2.0.0"


def test_nothing_to_roll_back_is_exit_5(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    before = tree_snapshot(home)
    doc = ok(lbctl("rollback", ID, "--json"), 5).json
    assert doc["errors"][0]["code"] == "not_found" and tree_snapshot(home) == before
    assert ok(lbctl("rollback", "acme/nothing", "--json"), 5).json["errors"][0]["code"] == "not_installed"


def test_rollback_across_a_provenance_switch_asks_first(lbctl, market, tmp_path):
    ok(lbctl("install", f"{ID}==1.0.0"))
    local = tmp_path / "echo-3.0.0.lbpkg"
    local.write_bytes(make_lbpkg("acme", "echo", "3.0.0"))
    ok(lbctl("install", str(local), "--yes"))
    assert ok(lbctl("rollback", ID), 2).exit_code == 2
    ok(lbctl("rollback", ID, "--yes"))
    assert (row(lbctl)["version"], row(lbctl)["source"]) == ("1.0.0", "marketplace")


def test_sigkill_during_rollback_leaves_the_old_or_the_new_state(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    ok(lbctl("update", ID))
    states = set()
    rng = random.Random(7)
    for i in range(12):
        before = row(lbctl)["version"]
        proc = subprocess.Popen([sys.executable, "-m", "lbctl", "rollback", ID, "-q"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = row(lbctl)  # must load: never a half-written state
        assert after["version"] in ("1.0.0", "2.0.0") and ok(lbctl("verify")).exit_code == 0
        states.add((before, after["version"]))
    assert ok(lbctl("rollback", ID)).exit_code == 0


# --- ids ---------------------------------------------------------------------------------------------------


def test_a_bare_name_that_one_plugin_has_is_enough(lbctl, market):
    ok(lbctl("install", f"{ID}==1.0.0"))
    assert row(lbctl, "echo")["id"] == ID
    ok(lbctl("config", "set", "echo", "greeting=short"))
    assert ok(lbctl("config", "get", "echo", "greeting")).stdout.strip() == "short"


@pytest.mark.parametrize("args", [("show", "acme/ecko"), ("config", "show", "acme/ecko"), ("uninstall", "acme/ecko"),
                                  ("update", "acme/ecko"), ("disable", "acme/ecko"), ("pin", "acme/ecko")])
def test_every_not_installed_error_has_a_hint_naming_the_close_id(lbctl, market, args):
    ok(lbctl("install", f"{ID}==1.0.0"))
    error = ok(lbctl(*args, "--json"), 5).json["errors"][0]
    assert (error["code"], error["hint"]) == ("not_installed", f"Did you mean {ID}?")


# --- purge ---------------------------------------------------------------------------------------------------


def put_data(home: Path, plugin_id: str) -> None:
    db = sqlite3.connect(home / "storage.db")
    db.execute("CREATE TABLE IF NOT EXISTS storage (owner_type TEXT NOT NULL, owner TEXT NOT NULL, "
               "key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (owner_type, owner, key))")
    db.execute("INSERT INTO storage VALUES ('plugin', ?, 'k', x'01')", (plugin_id,))
    db.commit()
    db.close()


def data_of(home: Path, plugin_id: str) -> int:
    db = sqlite3.connect(home / "storage.db")
    try:
        return db.execute("SELECT COUNT(*) FROM storage WHERE owner=?", (plugin_id,)).fetchone()[0]
    finally:
        db.close()


def test_purge_with_the_storage_locked_changes_nothing_and_can_be_retried(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    put_data(home, ID)
    before = ok(lbctl("show", ID, "--json")).json
    locker = sqlite3.connect(home / "storage.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        refused = ok(lbctl("uninstall", ID, "--purge", "--yes", "--json"), 6).json["errors"][0]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert "storage" in refused["message"]
    assert ok(lbctl("show", ID, "--json")).json["data"] == before["data"] and data_of(home, ID) == 1

    ok(lbctl("uninstall", ID, "--purge", "--yes"))
    assert data_of(home, ID) == 0 and ok(lbctl("show", ID), 5)


def test_data_left_by_an_uninstall_can_still_be_purged(lbctl, market, home):
    ok(lbctl("install", f"{ID}==1.0.0"))
    put_data(home, ID)
    ok(lbctl("uninstall", ID))
    assert data_of(home, ID) == 1
    ok(lbctl("uninstall", ID, "--purge", "--yes"))
    assert data_of(home, ID) == 0
    assert ok(lbctl("uninstall", ID, "--purge", "--yes", "--json"), 5).json["errors"][0]["code"] == "not_installed"


def test_an_invalid_edit_on_a_terminal_reopens_the_editor_with_the_reason(market, tmp_path, lbctl):
    from test_readme import in_terminal

    ok(lbctl("install", f"{ID}==1.0.0"))
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import pathlib, sys\n"
        "p = pathlib.Path(sys.argv[1]); n = pathlib.Path(sys.argv[0]).with_suffix('.count')\n"
        "count = int(n.read_text()) if n.exists() else 0; n.write_text(str(count + 1))\n"
        "text = p.read_text()\n"
        "if count == 0: p.write_text(text.replace('count = 1', 'count = [broken'))\n"
        "else:\n"
        "    assert text.startswith('# lbctl: this edit was not saved: '), text\n"
        "    p.write_text(text.replace('count = [broken', 'count = 5'))\n")
    env = {**os.environ, "VISUAL": f"{sys.executable} {editor}"}
    output = in_terminal(f"{sys.executable} -m lbctl config edit {ID}", env)
    assert "configured acme/echo" in output, output
    assert (tmp_path / "editor.count").read_text() == "2"
    assert ok(lbctl("config", "get", ID, "count")).stdout.strip() == "5"
