"""The core package commands through the real CLI: install, uninstall, list, show, inspect, enable, disable.

Every test runs in its own home (the autouse `isolated` fixture) with real .lbpkg archives.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from conftest import FIXTURE_ID, tree_snapshot
from lbctl import __version__
from lbctl.lbpkg import sha256_bytes
from lbctl.models import Record
from lbctl.state import Environment
from pkgfactory import make_lbpkg

ENVELOPE_KEYS = {"lbctl", "command", "status", "exit_code", "data", "warnings", "errors"}
ACTION_KEYS = {"id", "action", "from", "to", "source", "status", "reason"}
LIST_KEYS = {"id", "version", "source", "enabled", "status", "sha256", "installed_at", "latest"}
PLUGIN_KEYS = {"id", "version", "label", "description", "source", "enabled", "sha256", "installed_at", "spec",
               "origin", "components", "config"}
CONFIG_ROW_KEYS = {"name", "type", "required", "default", "value", "secret"}
FIXTURE_SHA = "f0c24c3bcc60196a8d92f81a65534f1236c237a9d880cf3208f73005fd9bcb63"
EXIT_CODES = (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 130)
ANSI = re.compile(r"\x1b\[")


def envelope(run, command: str, *, exit_code: int = 0) -> dict:
    """The one JSON document on stdout, checked against spec §6; returns it."""
    assert run.exit_code == exit_code, run.output
    assert run.stdout.count("\n") == 1 and run.stdout.endswith("\n"), run.output
    doc = run.json
    assert ENVELOPE_KEYS <= doc.keys()
    assert (doc["lbctl"], doc["command"], doc["exit_code"]) == (1, command, exit_code)
    assert doc["status"] == ("success" if exit_code == 0 else "error")
    assert isinstance(doc["warnings"], list) and all(isinstance(w, str) for w in doc["warnings"])
    for error in doc["errors"]:
        assert {"code", "message", "hint", "plugin"} <= error.keys()
        assert isinstance(error["code"], str) and "\n" not in error["message"]
    if exit_code == 0:
        assert run.stderr == "", run.output
        assert doc["errors"] == []
    else:
        assert doc["data"] is None and doc["errors"]
    return doc


def actions(run, command: str, *, exit_code: int = 0) -> list[dict]:
    acts = envelope(run, command, exit_code=exit_code)["data"]["actions"]
    for act in acts:
        assert ACTION_KEYS <= act.keys()
    return acts


def pick(act: dict, *keys: str) -> tuple:
    return tuple(act[k] for k in keys)


def write_pkg(directory: Path, author: str, name: str, version: str, **kwargs) -> Path:
    path = directory / f"{author}-{name}-{version}.lbpkg"
    path.write_bytes(make_lbpkg(author, name, version, **kwargs))
    return path


def utc(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def state_config(home: Path) -> dict:
    return Environment(home).load().config


def set_config(home: Path, plugin_id: str, **values) -> None:
    with Environment(home).transaction() as state:
        state.config.setdefault(plugin_id, {}).update(values)


# install -------------------------------------------------------------------------------------------------


def test_install_local_package_json(lbctl, fixture_lbpkg, home):
    acts = actions(lbctl("install", fixture_lbpkg, "--json"), "install")
    assert [pick(a, "id", "action", "from", "to", "source", "status") for a in acts] == [
        (FIXTURE_ID, "install", None, "0.1.0", "local", "done")]
    record = Environment(home).load().plugins[FIXTURE_ID]
    assert (record.version, record.source, record.sha256, record.enabled) == ("0.1.0", "local", FIXTURE_SHA, True)
    assert record.origin == str(fixture_lbpkg.resolve())
    assert (home / "packages" / f"{FIXTURE_SHA}.lbpkg").read_bytes() == fixture_lbpkg.read_bytes()


def test_install_table_output(lbctl, fixture_lbpkg):
    result = lbctl("install", fixture_lbpkg)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"installed {FIXTURE_ID} 0.1.0 (local)"


def test_install_gives_new_plugin_the_schema_defaults(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert state_config(home)[FIXTURE_ID] == {"greeting": "hi", "count": 1, "mode": "a"}


def test_second_install_is_already_installed_and_changes_nothing(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(home)

    table = lbctl("install", fixture_lbpkg)
    assert table.exit_code == 0, table.output
    assert "already installed" in table.stdout
    acts = actions(lbctl("install", fixture_lbpkg, "--json"), "install")
    assert [pick(a, "id", "action", "status", "reason") for a in acts] == [
        (FIXTURE_ID, "skip", "skipped", "already installed")]
    assert tree_snapshot(home) == before


def test_force_reinstalls(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    acts = actions(lbctl("install", fixture_lbpkg, "--force", "--json"), "install")
    assert [pick(a, "id", "action", "from", "to", "status") for a in acts] == [
        (FIXTURE_ID, "reinstall", "0.1.0", "0.1.0", "done")]
    table = lbctl("install", fixture_lbpkg, "--force")
    assert table.exit_code == 0 and table.stdout.strip() == f"reinstalled {FIXTURE_ID} 0.1.0 (local)"


def test_force_reinstall_repairs_a_damaged_stored_package(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    stored = home / "packages" / f"{FIXTURE_SHA}.lbpkg"
    stored.write_bytes(fixture_lbpkg.read_bytes()[:100])
    assert lbctl("install", fixture_lbpkg, "--force").exit_code == 0
    assert stored.read_bytes() == fixture_lbpkg.read_bytes(), "--force must put the package back as it is"
    assert lbctl("show", FIXTURE_ID).exit_code == 0


def test_dry_run_plans_and_changes_nothing(lbctl, fixture_lbpkg, home, tmp_path):
    acts = actions(lbctl("install", fixture_lbpkg, "--dry-run", "--json"), "install")
    assert [pick(a, "id", "action", "to", "status") for a in acts] == [(FIXTURE_ID, "install", "0.1.0", "planned")]
    assert not home.exists()

    table = lbctl("install", fixture_lbpkg, "--dry-run")
    assert table.exit_code == 0 and "would install" in table.stdout
    assert not home.exists()

    assert lbctl("install", fixture_lbpkg).exit_code == 0
    newer = write_pkg(tmp_path, "lbctl-tests", "hello", "0.2.0")
    before = tree_snapshot(home)
    acts = actions(lbctl("install", newer, "--dry-run", "--json"), "install")
    assert [pick(a, "action", "from", "to", "status") for a in acts] == [("update", "0.1.0", "0.2.0", "planned")]
    assert tree_snapshot(home) == before


def test_several_packages_in_one_command(lbctl, fixture_lbpkg, tmp_path, home):
    one = write_pkg(tmp_path, "alice", "one", "1.0.0")
    two = write_pkg(tmp_path, "bob", "two", "2.0.0")
    acts = actions(lbctl("install", one, fixture_lbpkg, two, "--json"), "install")
    assert [pick(a, "id", "action", "to", "status") for a in acts] == [
        ("alice/one", "install", "1.0.0", "done"), (FIXTURE_ID, "install", "0.1.0", "done"),
        ("bob/two", "install", "2.0.0", "done")]
    state = Environment(home).load()
    assert state.revision == 1, "one command is one transaction"
    assert sorted(state.plugins) == ["alice/one", "bob/two", FIXTURE_ID]


def test_update_and_downgrade_of_a_local_package(lbctl, fixture_lbpkg, tmp_path):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    newer = write_pkg(tmp_path, "lbctl-tests", "hello", "0.2.0")
    acts = actions(lbctl("install", newer, "--json"), "install")
    assert [pick(a, "action", "from", "to", "status") for a in acts] == [("update", "0.1.0", "0.2.0", "done")]
    acts = actions(lbctl("install", fixture_lbpkg, "--json"), "install")
    assert [pick(a, "action", "from", "to", "status") for a in acts] == [("downgrade", "0.2.0", "0.1.0", "done")]


def test_same_id_twice_is_refused(lbctl, fixture_lbpkg, tmp_path, home):
    other_version = write_pkg(tmp_path, "lbctl-tests", "hello", "0.2.0")
    for args in ((fixture_lbpkg, fixture_lbpkg), (fixture_lbpkg, other_version)):
        doc = envelope(lbctl("install", *args, "--json"), "install", exit_code=2)
        assert FIXTURE_ID in doc["errors"][0]["message"]
        assert not home.exists()


def test_missing_file_is_not_found(lbctl, fixture_lbpkg, tmp_path, home):
    missing = tmp_path / "nope-1.0.0.lbpkg"
    doc = envelope(lbctl("install", fixture_lbpkg, missing, "--json"), "install", exit_code=5)
    assert doc["errors"][0]["code"] == "not_found"
    assert str(missing) in doc["errors"][0]["message"]
    assert not home.exists(), "a failing spec must stop the whole command"

    table = lbctl("install", missing)
    assert table.exit_code == 5 and table.stdout == ""
    assert table.stderr.startswith("error: ") and "Traceback" not in table.stderr


def test_install_without_spec_is_a_usage_error(lbctl):
    doc = envelope(lbctl("install", "--json"), "install", exit_code=2)
    assert doc["errors"][0]["code"] == "usage"


# list ----------------------------------------------------------------------------------------------------


@pytest.fixture
def three(lbctl, fixture_lbpkg, tmp_path, home) -> None:
    """The fixture (local) plus two factory packages, one of them recorded as a marketplace install."""
    one = write_pkg(tmp_path, "alice", "one", "1.0.0")
    two = write_pkg(tmp_path, "bob", "two", "2.0.0")
    assert lbctl("install", fixture_lbpkg, one, two).exit_code == 0
    with Environment(home).transaction() as state:
        rec = state.plugins["bob/two"]
        state.plugins["bob/two"] = replace(rec, source="marketplace", spec="bob/two",
                                           origin="https://space.langbot.app")


def test_list_piped_prints_plain_lines(lbctl, three):
    for command in ("list", "ls"):
        result = lbctl(command)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "alice/one 1.0.0 local", "bob/two 2.0.0 marketplace", f"{FIXTURE_ID} 0.1.0 local"]
        assert not re.search(r"[\u2500-\u257f]", result.stdout), "no box drawing when piped"


def test_list_json_fields(lbctl, three, home):
    plugins = envelope(lbctl("list", "--json"), "list")["data"]["plugins"]
    assert [p["id"] for p in plugins] == ["alice/one", "bob/two", FIXTURE_ID]
    state = Environment(home).load()
    for p in plugins:
        assert LIST_KEYS <= p.keys()
        rec = state.plugins[p["id"]]
        assert (p["version"], p["source"], p["sha256"], p["installed_at"]) == (
            rec.version, rec.source, rec.sha256, rec.installed_at)
        assert p["enabled"] is True and p["status"] == "-" and p["latest"] is None
        utc(p["installed_at"])
    assert next(p for p in plugins if p["id"] == FIXTURE_ID)["sha256"] == FIXTURE_SHA


def test_list_source_filter(lbctl, three):
    local = envelope(lbctl("list", "--source", "local", "--json"), "list")["data"]["plugins"]
    assert [p["id"] for p in local] == ["alice/one", FIXTURE_ID]
    market = lbctl("ls", "--source", "marketplace")
    assert market.exit_code == 0 and market.stdout.splitlines() == ["bob/two 2.0.0 marketplace"]
    assert envelope(lbctl("list", "--source", "url", "--json"), "list")["data"]["plugins"] == []


def test_list_bad_source_is_a_usage_error(lbctl, three, home):
    before = tree_snapshot(home)
    doc = envelope(lbctl("list", "--source", "pypi", "--json"), "list", exit_code=2)
    assert "pypi" in doc["errors"][0]["message"]
    table = lbctl("list", "--source", "pypi")
    assert table.exit_code == 2 and table.stdout == "" and "error:" in table.stderr
    assert tree_snapshot(home) == before


def test_list_of_an_empty_home(lbctl, home):
    assert envelope(lbctl("list", "--json"), "list")["data"] == {"plugins": [], "target": "local"}
    result = lbctl("list")
    assert result.exit_code == 0 and result.stdout == ""
    assert not home.exists(), "reading must not create the environment"


# show and inspect ----------------------------------------------------------------------------------------


def check_fixture_view(plugin: dict) -> None:
    assert PLUGIN_KEYS <= plugin.keys()
    assert (plugin["id"], plugin["version"], plugin["label"]) == (FIXTURE_ID, "0.1.0", "Hello")
    assert plugin["description"] == "Echoes text back with a configured greeting; a plugin for lbctl's own tests"
    assert plugin["sha256"] == FIXTURE_SHA
    tools = plugin["components"]["Tool"]
    assert [t["name"] for t in tools] == ["echo_tool"]
    assert tools[0]["description"]
    assert tools[0]["parameters"]["properties"]["text"]["type"] == "string"
    assert tools[0]["parameters"]["required"] == ["text"]
    assert [c["name"] for c in plugin["components"]["Command"]] == ["probe"]
    config = plugin["config"]
    for row in config:
        assert CONFIG_ROW_KEYS <= row.keys()
    assert [(r["name"], r["type"], r["required"], r["default"], r["secret"]) for r in config] == [
        ("greeting", "string", True, "hi", False), ("count", "integer", False, 1, False),
        ("mode", "select", True, "a", False)]


def check_fixture_table(stdout: str) -> None:
    assert FIXTURE_ID in stdout and "0.1.0" in stdout and "Hello" in stdout
    assert re.search(r"^Tools:\n\s+echo_tool: .+\n\s+- text \(string\)", stdout, re.M), stdout
    assert re.search(r"^Commands:\n\s+probe\b", stdout, re.M), stdout
    rows = {line.split()[0]: line.split() for line in stdout.splitlines()
            if line.split()[:1] and line.split()[0] in ("greeting", "count", "mode")}
    assert rows["greeting"][:4] == ["greeting", "string", "yes", "hi"]
    assert rows["count"][:4] == ["count", "integer", "no", "1"]
    assert rows["mode"][:4] == ["mode", "select:", "a|b", "yes"]  # the options are shown with the type


def test_show_json(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    plugin = envelope(lbctl("show", FIXTURE_ID, "--json"), "show")["data"]["plugin"]
    check_fixture_view(plugin)
    record = Environment(home).load().plugins[FIXTURE_ID]
    assert (plugin["source"], plugin["enabled"], plugin["installed_at"]) == ("local", True, record.installed_at)
    assert plugin["spec"] == str(fixture_lbpkg) and plugin["origin"] == str(fixture_lbpkg.resolve())
    assert [r["value"] for r in plugin["config"]] == ["hi", 1, "a"]
    utc(plugin["installed_at"])


def test_show_table(lbctl, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    result = lbctl("show", FIXTURE_ID)
    assert result.exit_code == 0, result.output
    check_fixture_table(result.stdout)
    assert "local" in result.stdout and FIXTURE_SHA in result.stdout


def test_show_reflects_stored_config(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    set_config(home, FIXTURE_ID, greeting="hello", mode="b")
    plugin = envelope(lbctl("show", FIXTURE_ID, "--json"), "show")["data"]["plugin"]
    assert {r["name"]: r["value"] for r in plugin["config"]} == {"greeting": "hello", "count": 1, "mode": "b"}


def test_inspect_json(lbctl, fixture_lbpkg, home):
    plugin = envelope(lbctl("inspect", fixture_lbpkg, "--json"), "inspect")["data"]["plugin"]
    check_fixture_view(plugin)
    assert (plugin["source"], plugin["installed_at"], plugin["enabled"]) == (None, None, None)
    assert not home.exists(), "inspect installs nothing"


def test_inspect_table(lbctl, fixture_lbpkg, home):
    result = lbctl("inspect", fixture_lbpkg)
    assert result.exit_code == 0, result.output
    check_fixture_table(result.stdout)
    assert not home.exists()


def test_inspect_invalid_and_missing(lbctl, tmp_path):
    bad = tmp_path / "bad.lbpkg"
    bad.write_bytes(b"not a zip")
    doc = envelope(lbctl("inspect", bad, "--json"), "inspect", exit_code=2)
    assert doc["errors"][0]["code"] == "invalid_package"
    envelope(lbctl("inspect", tmp_path / "missing.lbpkg", "--json"), "inspect", exit_code=5)


def test_show_missing_plugin_is_not_found(lbctl, fixture_lbpkg):
    doc = envelope(lbctl("show", "nobody/nothing", "--json"), "show", exit_code=5)
    assert doc["errors"][0]["plugin"] == "nobody/nothing"
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    table = lbctl("show", "nobody/nothing")
    assert table.exit_code == 5 and table.stdout == "" and table.stderr.startswith("error: ")


# uninstall -----------------------------------------------------------------------------------------------


def test_uninstall_keeps_config_for_a_later_install(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    set_config(home, FIXTURE_ID, greeting="hello", count=7)

    acts = actions(lbctl("uninstall", FIXTURE_ID, "--json"), "uninstall")
    assert [pick(a, "id", "action", "from", "status") for a in acts] == [(FIXTURE_ID, "uninstall", "0.1.0", "done")]
    assert envelope(lbctl("list", "--json"), "list")["data"]["plugins"] == []
    assert state_config(home)[FIXTURE_ID] == {"greeting": "hello", "count": 7, "mode": "a"}

    assert lbctl("install", fixture_lbpkg).exit_code == 0
    plugin = envelope(lbctl("show", FIXTURE_ID, "--json"), "show")["data"]["plugin"]
    assert {r["name"]: r["value"] for r in plugin["config"]} == {"greeting": "hello", "count": 7, "mode": "a"}


def test_uninstall_removes_the_unused_package_file(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("uninstall", FIXTURE_ID).exit_code == 0
    assert list((home / "packages").glob("*.lbpkg")) == []


def test_uninstall_table_and_remove_alias(lbctl, fixture_lbpkg, tmp_path):
    other = write_pkg(tmp_path, "alice", "one", "1.0.0")
    assert lbctl("install", fixture_lbpkg, other).exit_code == 0
    result = lbctl("uninstall", FIXTURE_ID)
    assert result.exit_code == 0 and result.stdout.strip() == f"uninstalled {FIXTURE_ID} 0.1.0 (local)"
    acts = actions(lbctl("remove", "alice/one", "--json"), "uninstall")
    assert [pick(a, "id", "action", "status") for a in acts] == [("alice/one", "uninstall", "done")]
    assert lbctl("ls").stdout == ""


def test_uninstall_of_a_plugin_that_is_not_installed(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(home)
    doc = envelope(lbctl("uninstall", FIXTURE_ID, "nobody/nothing", "--json"), "uninstall", exit_code=5)
    assert doc["errors"][0]["plugin"] == "nobody/nothing"
    assert tree_snapshot(home) == before


def test_uninstall_dry_run_changes_nothing(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(home)
    acts = actions(lbctl("uninstall", FIXTURE_ID, "--purge", "--dry-run", "--json"), "uninstall")
    assert [pick(a, "action", "status") for a in acts] == [("uninstall", "planned"), ("purge", "planned")]
    assert tree_snapshot(home) == before


def test_purge_needs_yes_when_not_on_a_terminal(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    set_config(home, FIXTURE_ID, greeting="hello")
    before = tree_snapshot(home)

    table = lbctl("uninstall", FIXTURE_ID, "--purge")
    assert table.exit_code == 2, table.output
    assert "--yes" in table.stderr and table.stdout == ""
    doc = envelope(lbctl("uninstall", FIXTURE_ID, "--purge", "--json"), "uninstall", exit_code=2)
    assert doc["errors"][0]["code"] == "confirmation_needed"
    assert "--yes" in (doc["errors"][0]["hint"] or "")
    assert tree_snapshot(home) == before


def test_purge_with_yes_deletes_the_config(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    set_config(home, FIXTURE_ID, greeting="hello")
    acts = actions(lbctl("uninstall", FIXTURE_ID, "--purge", "--yes", "--json"), "uninstall")
    assert [pick(a, "id", "action", "status") for a in acts] == [
        (FIXTURE_ID, "uninstall", "done"), (FIXTURE_ID, "purge", "done")]
    assert FIXTURE_ID not in state_config(home)
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert state_config(home)[FIXTURE_ID] == {"greeting": "hi", "count": 1, "mode": "a"}


def test_purge_of_an_uninstalled_plugin_deletes_its_kept_config(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("uninstall", FIXTURE_ID).exit_code == 0
    assert FIXTURE_ID in state_config(home)
    acts = actions(lbctl("uninstall", FIXTURE_ID, "--purge", "-y", "--json"), "uninstall")
    assert [pick(a, "action", "status") for a in acts] == [("purge", "done")]
    assert FIXTURE_ID not in state_config(home)


# enable / disable ----------------------------------------------------------------------------------------


def test_disable_and_enable(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0

    acts = actions(lbctl("disable", FIXTURE_ID, "--json"), "disable")
    assert [pick(a, "id", "action", "status") for a in acts] == [(FIXTURE_ID, "disable", "done")]
    assert Environment(home).load().plugins[FIXTURE_ID].enabled is False
    assert envelope(lbctl("list", "--json"), "list")["data"]["plugins"][0]["enabled"] is False

    before = tree_snapshot(home)
    acts = actions(lbctl("disable", FIXTURE_ID, "--json"), "disable")
    assert [pick(a, "id", "action", "status") for a in acts] == [(FIXTURE_ID, "skip", "skipped")]
    assert "already disabled" in acts[0]["reason"]
    assert tree_snapshot(home) == before

    assert lbctl("install", fixture_lbpkg, "--force").exit_code == 0
    assert Environment(home).load().plugins[FIXTURE_ID].enabled is False, "a reinstall keeps it disabled"

    acts = actions(lbctl("enable", FIXTURE_ID, "--json"), "enable")
    assert [pick(a, "id", "action", "status") for a in acts] == [(FIXTURE_ID, "enable", "done")]
    assert Environment(home).load().plugins[FIXTURE_ID].enabled is True
    table = lbctl("enable", FIXTURE_ID)
    assert table.exit_code == 0 and "already enabled" in table.stdout


def test_enable_of_a_plugin_that_is_not_installed(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(home)
    envelope(lbctl("disable", FIXTURE_ID, "nobody/nothing", "--json"), "disable", exit_code=5)
    assert tree_snapshot(home) == before


# provenance ----------------------------------------------------------------------------------------------


def marketplace_record(home: Path, package: Path) -> None:
    data = package.read_bytes()
    env = Environment(home)
    with env.transaction() as state:
        env.store_package(package, sha256_bytes(data))
        state.plugins[FIXTURE_ID] = Record(
            id=FIXTURE_ID, version="0.1.0", source="marketplace", sha256=sha256_bytes(data),
            installed_at="2025-01-01T00:00:00Z", spec=FIXTURE_ID, origin="https://space.langbot.app")
        state.config[FIXTURE_ID] = {"greeting": "from market", "count": 3, "mode": "b"}


def test_replacing_a_marketplace_install_with_a_local_package_needs_confirmation(lbctl, fixture_lbpkg, home):
    marketplace_record(home, fixture_lbpkg)
    before = tree_snapshot(home)

    doc = envelope(lbctl("install", fixture_lbpkg, "--json"), "install", exit_code=2)
    error = doc["errors"][0]
    assert error["code"] == "confirmation_needed"
    assert "--yes" in (error["hint"] or "") and "updates" in error["message"]
    table = lbctl("install", fixture_lbpkg)
    assert table.exit_code == 2 and "--yes" in table.stderr
    assert tree_snapshot(home) == before

    acts = actions(lbctl("install", fixture_lbpkg, "--yes", "--json"), "install")
    assert [pick(a, "id", "action", "to", "source", "status") for a in acts] == [
        (FIXTURE_ID, "reinstall", "0.1.0", "local", "done")]
    record = Environment(home).load().plugins[FIXTURE_ID]
    assert record.source == "local" and record.origin == str(fixture_lbpkg.resolve())
    assert state_config(home)[FIXTURE_ID] == {"greeting": "from market", "count": 3, "mode": "b"}


def test_dry_run_of_a_provenance_switch_needs_no_confirmation(lbctl, fixture_lbpkg, home):
    marketplace_record(home, fixture_lbpkg)
    before = tree_snapshot(home)
    acts = actions(lbctl("install", fixture_lbpkg, "--dry-run", "--json"), "install")
    assert [pick(a, "action", "source", "status") for a in acts] == [("reinstall", "local", "planned")]
    assert tree_snapshot(home) == before


# global options, usage errors, envelope ------------------------------------------------------------------


def test_global_options_after_the_command(lbctl, fixture_lbpkg, tmp_path):
    other = tmp_path / "other-home"
    assert lbctl("install", fixture_lbpkg, "--home", other, "--json").exit_code == 0
    plugins = envelope(lbctl("list", "--home", other, "--json"), "list")["data"]["plugins"]
    assert [p["id"] for p in plugins] == [FIXTURE_ID]
    assert envelope(lbctl("--home", other, "--json", "list"), "list")["data"]["plugins"] == plugins
    assert envelope(lbctl("list", "-o", "json"), "list")["data"]["plugins"] == []
    assert lbctl("list", f"--home={other}").stdout.strip() == f"{FIXTURE_ID} 0.1.0 local"


def test_output_from_the_environment(lbctl, fixture_lbpkg, monkeypatch):
    monkeypatch.setenv("LBCTL_OUTPUT", "json")
    envelope(lbctl("install", fixture_lbpkg), "install")


@pytest.mark.parametrize("args, command", [
    (("frobnicate", "--json"), "frobnicate"),
    (("--json", "show"), "show"),
    (("uninstall", "--json"), "uninstall"),
    (("list", "--bogus-option", "--json"), "list"),
])
def test_usage_errors_give_one_json_document(lbctl, args, command, home):
    result = lbctl(*args)
    doc = envelope(result, command, exit_code=2)
    assert doc["errors"][0]["code"] == "usage"
    assert not home.exists()


def test_global_option_without_its_value_after_the_command(lbctl, home):
    doc = envelope(lbctl("list", "--json", "--home"), "list", exit_code=2)
    assert "--home" in doc["errors"][0]["message"]
    assert not home.exists()


def test_usage_error_in_table_mode_is_one_line_on_stderr(lbctl):
    result = lbctl("frobnicate")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_successful_json_commands_write_nothing_to_stderr(lbctl, fixture_lbpkg):
    for args in (("install", fixture_lbpkg), ("install", fixture_lbpkg), ("install", fixture_lbpkg, "--force"),
                 ("list",), ("show", FIXTURE_ID), ("inspect", fixture_lbpkg), ("disable", FIXTURE_ID),
                 ("enable", FIXTURE_ID), ("uninstall", FIXTURE_ID, "--dry-run"), ("uninstall", FIXTURE_ID),
                 ("uninstall", FIXTURE_ID, "--purge", "--yes"), ("help", "exit-codes")):
        result = lbctl(*args, "--json")
        assert result.exit_code == 0 and result.stderr == "", result.output
        json.loads(result.stdout)


def test_version(lbctl):
    result = lbctl("--version")
    assert result.exit_code == 0 and result.stdout == f"lbctl {__version__}\n"
    assert re.fullmatch(r"lbctl \d+\.\d+\.\d+\n", result.stdout)
    proc = subprocess.run([sys.executable, "-m", "lbctl", "--version"], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"lbctl {__version__}\n", "")


def test_help_exit_codes_lists_every_code(lbctl):
    result = lbctl("help", "exit-codes")
    assert result.exit_code == 0, result.output
    listed = {int(m) for m in re.findall(r"^\s*(\d+)\s", result.stdout, re.M)}
    assert listed == set(EXIT_CODES)
    rows = envelope(lbctl("help", "exit-codes", "--json"), "help exit-codes")["data"]["exit_codes"]
    assert [r["code"] for r in rows] == list(EXIT_CODES) and all(r["meaning"] for r in rows)


def test_repeated_in_process_runs_do_not_register_commands_again(lbctl):
    """`invoke` may be called many times in one process (tests, embedding); the app must not grow."""
    from lbctl.cli import app

    assert lbctl("list").exit_code == 0
    commands, groups = len(app.app.registered_commands), len(app.app.registered_groups)
    for _ in range(3):
        assert lbctl("list").exit_code == 0
    assert (len(app.app.registered_commands), len(app.app.registered_groups)) == (commands, groups)


# colour --------------------------------------------------------------------------------------------------


def test_no_color_in_captured_output(lbctl, fixture_lbpkg):
    runs = [lbctl("install", fixture_lbpkg), lbctl("list"), lbctl("show", FIXTURE_ID), lbctl("inspect", fixture_lbpkg),
            lbctl("help", "exit-codes"), lbctl("show", "nobody/nothing"), lbctl("frobnicate")]
    for result in runs:
        assert not ANSI.search(result.stdout + result.stderr), result.output


def run_on_terminal(*args: str, env: dict | None = None) -> tuple[int, str]:
    """Run lbctl with stdin, stdout and stderr on a pseudo-terminal; returns (exit code, everything printed)."""
    main, child = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lbctl", *args], stdin=child, stdout=child, stderr=child,
                                env=env)
    finally:
        os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO once the child has closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color"])
def test_no_color_on_a_terminal(how, lbctl, fixture_lbpkg):
    """NO_COLOR or --no-color means no escape sequences at all (no colour, no bold), even on a terminal."""
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    env = dict(os.environ)
    if how == "--no-color":
        del env["NO_COLOR"]
    flags = ("--no-color",) if how == "--no-color" else ()
    for args in (("list",), ("show", FIXTURE_ID), ("help", "exit-codes"), ("show", "nobody/nothing")):
        code, text = run_on_terminal(*args, *flags, env=env)
        assert code in (0, 5), text
        assert not ANSI.search(text), f"lbctl {' '.join(args)} printed escapes with {how}: {text[:200]!r}"


def test_list_on_a_terminal_is_a_table(lbctl, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    code, text = run_on_terminal("list", "--no-color")
    assert code == 0
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert re.search(r"ID\s+VERSION\s+SOURCE\s+ENABLED\s+STATUS\s+UPDATE", plain), plain
    assert FIXTURE_ID in plain
