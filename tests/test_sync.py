"""Plugins files (spec §5): freeze, sync, install -r; verify; cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import tree_snapshot
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg


@pytest.fixture
def market(monkeypatch):
    with FakeMarket() as fake:
        monkeypatch.setenv("LBCTL_INDEX_URL", fake.url)
        yield fake


def ok(run, code: int = 0):
    assert run.exit_code == code, run.output
    return run


def package(directory: Path, author: str, name: str, version: str) -> Path:
    path = directory / f"{author}-{name}-{version}.lbpkg"
    path.write_bytes(make_lbpkg(author, name, version))
    return path


def state_of(lbctl, home: Path) -> dict:
    """What sync must reproduce: id -> (version, source, sha256, enabled, config)."""
    plugins = ok(lbctl("list", "--json", "--home", home)).json["data"]["plugins"]
    result = {}
    for p in plugins:
        config = ok(lbctl("config", "show", p["id"], "--json", "--home", home)).json["data"]["config"]
        values = {row["name"]: row["value"] for row in config}
        result[p["id"]] = (p["version"], p["source"], p["sha256"], p["enabled"], values)
    return result


def actions(run) -> list[tuple]:
    return [(a["id"], a["action"], a["status"]) for a in run.json["data"]["actions"]]


@pytest.fixture
def populated(lbctl, market, tmp_path, home):
    """A home with a marketplace install, a local install (disabled) and some config."""
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    market.add(make_lbpkg("acme", "echo", "1.1.0"))
    local = package(tmp_path, "me", "local", "2.0.0")
    ok(lbctl("install", "acme/echo==1.0.0", local))
    ok(lbctl("config", "set", "acme/echo", "greeting=howdy", "count=7"))
    ok(lbctl("disable", "me/local"))
    return local


def test_freeze_then_sync_into_an_empty_home_reproduces_the_environment(lbctl, populated, tmp_path, home):
    frozen = ok(lbctl("freeze", "--with-config"))
    assert frozen.stdout.startswith("# Written by `lbctl freeze`")
    file = tmp_path / "plugins.toml"
    file.write_text(frozen.stdout)

    other = tmp_path / "other-home"
    run = ok(lbctl("sync", file, "--home", other, "--json"))

    assert {(i, a) for i, a, _ in actions(run)} >= {("acme/echo", "install"), ("me/local", "install"),
                                                    ("me/local", "disable")}
    assert state_of(lbctl, other) == state_of(lbctl, home)


def test_freeze_json_lists_every_field(lbctl, populated):
    rows = {p["id"]: p for p in ok(lbctl("freeze", "--json")).json["data"]["plugins"]}
    assert rows["acme/echo"]["source"] == "marketplace" and rows["acme/echo"]["path"] is None
    assert rows["me/local"]["path"] == str(populated.resolve()) and rows["me/local"]["enabled"] is False
    assert set(rows["acme/echo"]) >= {"id", "version", "source", "sha256", "path", "enabled", "config"}


def test_second_sync_does_nothing(lbctl, populated, tmp_path, home, market):
    file = tmp_path / "plugins.toml"
    file.write_text(ok(lbctl("freeze", "--with-config")).stdout)
    other = tmp_path / "other-home"
    ok(lbctl("sync", file, "--home", other))
    before, requests = tree_snapshot(other), len(market.requests)

    run = ok(lbctl("sync", file, "--home", other, "--json"))

    assert run.json["data"]["actions"] == []
    assert tree_snapshot(other) == before
    assert len(market.requests) == requests  # a satisfied file needs no network
    assert "Nothing to do" in ok(lbctl("sync", file, "--home", other)).stderr


def test_prune_removes_what_the_file_does_not_list(lbctl, populated, tmp_path):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.0.0"\n')

    ok(lbctl("sync", file))
    assert set(ok(lbctl("list", "--json")).json["data"]["plugins"][i]["id"] for i in range(2)) == {
        "acme/echo", "me/local"}

    run = ok(lbctl("sync", file, "--prune", "--json"))
    assert ("me/local", "uninstall", "done") in actions(run)
    assert [p["id"] for p in ok(lbctl("list", "--json")).json["data"]["plugins"]] == ["acme/echo"]


def test_sync_updates_and_downgrades_to_the_file(lbctl, populated, tmp_path):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.1.0"\n')
    assert ("acme/echo", "update", "done") in actions(ok(lbctl("sync", file, "--json")))
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "1.0.0"\n')
    assert ("acme/echo", "downgrade", "done") in actions(ok(lbctl("sync", file, "--json")))
    echo = ok(lbctl("config", "get", "acme/echo", "greeting")).stdout.strip()
    assert echo == "howdy"  # config survives both


def test_dry_run_plans_and_changes_nothing(lbctl, populated, tmp_path, home):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.1.0"\n')
    before = tree_snapshot(home)

    run = ok(lbctl("sync", file, "--prune", "--dry-run", "--json"))

    assert set(actions(run)) == {("acme/echo", "update", "planned"), ("me/local", "uninstall", "planned")}
    assert tree_snapshot(home) == before


def test_sha256_mismatch_is_refused_and_nothing_changes(lbctl, populated, tmp_path, home):
    file = tmp_path / "plugins.toml"
    file.write_text(f'[[plugin]]\nid = "acme/echo"\nversion = "==1.1.0"\nsha256 = "{"0" * 64}"\n')
    before = tree_snapshot(home)

    run = lbctl("sync", file, "--json")

    assert run.exit_code == 2, run.output
    assert run.json["errors"][0]["code"] == "package_mismatch" and "sha256" in run.json["errors"][0]["message"]
    assert tree_snapshot(home) == before


def test_local_entry_with_the_right_sha_installs(lbctl, tmp_path):
    pkg = package(tmp_path, "me", "pinned", "1.0.0")
    sha = hashlib.sha256(pkg.read_bytes()).hexdigest()
    file = tmp_path / "plugins.toml"
    file.write_text(f'[[plugin]]\nid = "me/pinned"\npath = "{pkg.name}"\nsha256 = "{sha}"\n')
    assert ("me/pinned", "install", "done") in actions(ok(lbctl("sync", file, "--json")))


MALFORMED = {
    "bad toml": ('[[plugin]\nid = "a/b"\n', "invalid TOML"),
    "unknown top-level key": ('[[plugin]]\nid = "a/b"\n\n[extras]\nx = 1\n', ":4: unknown key 'extras'"),
    "unknown plugin key": ('[[plugin]]\nid = "a/b"\nversion = "1.0"\nfoo = 1\n', ":4: unknown key 'foo'"),
    "bad id": ('[[plugin]]\nid = "not an id"\n', ":1:"),
    "no id": ('[[plugin]]\nversion = "1.0"\n', "needs an id"),
    "wrong type": ('[[plugin]]\nid = "a/b"\nenabled = "yes"\n', ":3: enabled must be a bool"),
    "bad sha": ('[[plugin]]\nid = "a/b"\nsha256 = "xyz"\n', "sha256"),
    "path and url": ('[[plugin]]\nid = "a/b"\npath = "x.lbpkg"\nurl = "https://h/x.lbpkg"\n', "both path and url"),
    "listed twice": ('[[plugin]]\nid = "a/b"\n\n[[plugin]]\nid = "a/b"\n', ":4: a/b is listed twice"),
    "bad specifier": ('[[plugin]]\nid = "a/b"\nversion = ">>1"\n', ":1:"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("command", [("sync",), ("install", "-r")])
def test_malformed_plugins_file_is_refused_with_its_line(lbctl, populated, tmp_path, home, case, command):
    text, expected = MALFORMED[case]
    (tmp_path / "x.lbpkg").write_bytes(b"")
    file = tmp_path / "plugins.toml"
    file.write_text(text)
    before = tree_snapshot(home)

    run = lbctl(*command, file, "--json")

    assert run.exit_code == 2, run.output
    error = run.json["errors"][0]
    assert error["code"] == "invalid_plugins_file"
    assert expected in error["message"] and str(file) in error["message"]
    assert tree_snapshot(home) == before


def test_invalid_config_in_the_file_is_refused(lbctl, populated, tmp_path, home):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.0.0"\n[plugin.config]\ncount = "many"\n')
    before = tree_snapshot(home)
    run = lbctl("sync", file)
    assert run.exit_code == 2 and "count" in run.stderr and f"{file}:1" in run.stderr
    assert tree_snapshot(home) == before


@pytest.mark.parametrize("command", [("sync",), ("install", "-r")])
def test_a_missing_plugins_file_or_package_is_not_found_exit_5(lbctl, populated, tmp_path, home, command):
    """Not found is 5 for every file (spec §6), as `install ./missing.lbpkg` is: the plugins file itself, and a
    package it names that is neither at its path nor known by a sha256."""
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "a/b"\npath = "nowhere.lbpkg"\n')
    before = tree_snapshot(home)

    missing = lbctl(*command, tmp_path / "nope.toml", "--json")
    package = lbctl(*command, file, "--json")

    assert missing.exit_code == 5 and missing.json["errors"][0]["code"] == "not_found", missing.output
    assert "No such plugins file" in missing.json["errors"][0]["message"]
    assert package.exit_code == 5 and package.json["errors"][0]["code"] == "not_found", package.output
    assert f"{file}:1" in package.json["errors"][0]["message"] and "does not exist" in package.stdout
    assert tree_snapshot(home) == before


def test_install_r_adds_and_updates_but_removes_nothing(lbctl, populated, tmp_path, market):
    market.add(make_lbpkg("acme", "new", "0.1.0"))
    file = tmp_path / "plugins.toml"
    # An entry the installed version satisfies is left alone (like pip without -U); a pin moves it.
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = ">=1.1"\n\n[[plugin]]\nid = "acme/new"\n')

    run = ok(lbctl("install", "-r", file, "--json"))

    assert run.json["command"] == "install"
    assert {("acme/echo", "update", "done"), ("acme/new", "install", "done")} <= set(actions(run))
    ids = {p["id"]: p["version"] for p in ok(lbctl("list", "--json")).json["data"]["plugins"]}
    assert ids == {"acme/echo": "1.1.0", "acme/new": "0.1.0", "me/local": "2.0.0"}
    assert lbctl("install", "-r", file, "acme/new").exit_code == 2  # not both in one call


def test_verify_detects_a_tampered_and_a_missing_package(lbctl, populated, home):
    assert ok(lbctl("verify", "--json")).json["data"] == {"ok": ["acme/echo", "me/local"], "mismatched": [],
                                                          "missing": []}
    state = ok(lbctl("list", "--json")).json["data"]["plugins"]
    sha = {p["id"]: p["sha256"] for p in state}
    stored = home / "packages" / f"{sha['acme/echo']}.lbpkg"
    stored.write_bytes(stored.read_bytes() + b"tampered")
    (home / "packages" / f"{sha['me/local']}.lbpkg").unlink()

    run = lbctl("verify", "--json")

    assert run.exit_code == 1
    data = run.json["data"]
    assert data["ok"] == [] and data["missing"] == ["me/local"]
    assert [(m["id"], m["expected"]) for m in data["mismatched"]] == [("acme/echo", sha["acme/echo"])]
    assert data["mismatched"][0]["actual"] != sha["acme/echo"]
    table = lbctl("verify")
    assert table.exit_code == 1 and "MISMATCH acme/echo" in table.stdout and "MISSING me/local" in table.stdout
    assert lbctl("verify", "nobody/nothing").exit_code == 5


def test_cache_dir_list_clear(lbctl, populated, tmp_path):
    cache = tmp_path / "cache"
    assert ok(lbctl("cache", "dir")).stdout.strip() == str(cache)
    listed = ok(lbctl("cache", "list", "--json")).json["data"]
    assert [f["ids"] for f in listed["files"]] == [["acme/echo==1.0.0"]]
    assert listed["size"] == sum(f["size"] for f in listed["files"]) > 0

    cleared = ok(lbctl("cache", "clear", "--json")).json["data"]
    assert cleared["removed"] == 1
    assert not cache.exists()
    assert ok(lbctl("cache", "list", "--json")).json["data"]["files"] == []
