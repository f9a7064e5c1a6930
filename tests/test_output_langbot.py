"""Output on a real LangBot 4.11.2 target (issue 19, issue 17): every action line and table header names the
target, an unset config value is its default on LangBot as locally, and `freeze` from LangBot says where local
packages came from and bundles them for another machine. Each test uses its own plugin ids and leaves the
instance empty."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from pkgfactory import make_lbpkg

pytestmark = pytest.mark.langbot

CONFIG = [
    {"name": "greeting", "type": "string", "default": "hi", "required": True},
    {"name": "debug", "type": "boolean", "default": False},
]


def ok(run, code: int = 0):
    assert run.exit_code == code, run.output
    return run


@pytest.fixture
def staging(langbot_server, lbctl, monkeypatch):
    """The session's LangBot as a named target `staging`, made the default with `target use`."""
    server, _ = langbot_server
    monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
    ok(lbctl("target", "add", "staging", server.url))
    ok(lbctl("target", "use", "staging"))
    yield server
    server.remove_all_plugins()


@pytest.fixture
def author() -> str:
    return "t" + uuid.uuid4().hex[:8]


def package(tmp_path: Path, author: str, name: str = "knobs") -> Path:
    path = tmp_path / f"{author}-{name}-1.0.0.lbpkg"
    path.write_bytes(make_lbpkg(author, name, "1.0.0", config=CONFIG))
    return path


def test_action_lines_and_table_headers_name_the_target(staging, lbctl, tmp_path, author):
    pid = f"{author}/knobs"
    path = package(tmp_path, author)

    installed = ok(lbctl("install", path))
    listed = ok(lbctl("list"))
    shown = ok(lbctl("show", pid)).stdout
    config = ok(lbctl("config", "show", pid)).stdout
    outdated = ok(lbctl("outdated")).stdout
    planned = ok(lbctl("uninstall", pid, "--dry-run")).stdout
    doc = ok(lbctl("list", "--json")).json
    removed = ok(lbctl("uninstall", pid))

    assert installed.stdout == f"installed {pid} 1.0.0 on staging (source: local)\n"
    assert f"{pid} is initialized on staging" in installed.stderr
    assert listed.stdout == f"{pid} 1.0.0 local\n" and "Plugins on staging" in listed.stderr  # piped: plain lines
    assert shown.startswith("Target:      staging\n"), shown
    assert config.splitlines()[0].rstrip() == f"Config of {pid} on staging", config
    assert "Not updatable on staging" in outdated, outdated
    assert planned == f"would uninstall {pid} 1.0.0 from staging (source: local)\n"
    assert doc["data"]["target"] == "staging"
    assert removed.stdout == f"uninstalled {pid} 1.0.0 from staging (source: local)\n"


def test_an_unset_value_is_its_default_on_langbot_as_locally(staging, lbctl, tmp_path, author):
    pid = f"{author}/knobs"
    path = package(tmp_path, author)
    ok(lbctl("install", path))
    ok(lbctl("--target", "local", "install", path))
    assert staging.api(f"/plugins/{pid}/config")["data"]["config"] in ({}, None)  # LangBot fills no default

    remote = {key: ok(lbctl("config", "get", pid, key)).stdout for key in ("debug", "greeting")}
    local = {key: ok(lbctl("--target", "local", "config", "get", pid, key)).stdout for key in ("debug", "greeting")}
    rows = ok(lbctl("config", "show", pid, "--json")).json["data"]["config"]
    table = ok(lbctl("config", "show", pid)).stdout
    show = ok(lbctl("show", pid, "--json"))

    assert remote == local == {"debug": "false\n", "greeting": "hi\n"}
    assert [(r["name"], r["value"], r["default_used"], r["missing"]) for r in rows] == [
        ("greeting", "hi", True, False), ("debug", False, True, False)]
    [line] = [line for line in table.splitlines() if line.lstrip().startswith("debug")]
    assert line.split()[-2:] == ["false", "(default)"], table
    assert show.json["warnings"] == []  # a required item its default fills is not missing

    ok(lbctl("config", "set", pid, "debug=true"))
    got = ok(lbctl("config", "get", pid, "debug", "--json")).json["data"]
    assert (got["value"], got["default_used"], got["target"]) == (True, False, "staging")


def test_freeze_from_langbot_says_where_packages_came_from_and_bundles_them(staging, langbot_server, lbctl, tmp_path,
                                                                            author, monkeypatch):
    pid = f"{author}/knobs"
    path = package(tmp_path, author)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    _, market = langbot_server
    published = make_lbpkg(author, "echo", "1.0.0", config=CONFIG)
    market.add(published)
    ok(lbctl("install", path, f"{author}/echo==1.0.0"))
    ok(lbctl("pin", pid, "--reason", "tested with 1.0"))
    path.unlink()  # the uploaded file is gone: lbctl's cache holds the only copy

    frozen = ok(lbctl("freeze"))
    everything = ok(lbctl("freeze", "--bundle", tmp_path / "all", "--bundle-all"))  # LangBot downloaded echo itself
    ok(lbctl("uninstall", f"{author}/echo"))
    bundle = tmp_path / "bundle"
    bundled = ok(lbctl("freeze", "--bundle", bundle))

    assert f"# {pid}: path is lbctl's own copy of the package (installed from {path})" in frozen.stdout
    assert f'path = "{tmp_path / "cache"}' in frozen.stdout and "freeze --bundle DIR" in frozen.stderr
    assert 'pin_reason = "tested with 1.0"' in frozen.stdout
    assert bundled.stdout == (f"saved {pid} 1.0.0 -> {bundle}/{author}-knobs-1.0.0.lbpkg\n"
                              f"wrote {bundle}/plugins.toml (1 plugin)\n")
    assert f"saved {author}/echo 1.0.0 -> {tmp_path}/all/{author}-echo-1.0.0.lbpkg" in everything.stdout
    assert (tmp_path / "all" / f"{author}-echo-1.0.0.lbpkg").read_bytes() == published
    text = (bundle / "plugins.toml").read_text()
    assert f'path = "{author}-knobs-1.0.0.lbpkg"' in text and "from staging" in text, text

    # Another machine: a fresh home and cache, only the bundle.
    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "elsewhere" / "home"))
    monkeypatch.setenv("LBCTL_CACHE_DIR", str(tmp_path / "elsewhere" / "cache"))
    ok(lbctl("--target", "local", "sync", bundle / "plugins.toml"))
    shown = ok(lbctl("--target", "local", "show", pid, "--json")).json["data"]["plugin"]
    assert (shown["sha256"], shown["source"], shown["pinned"]) == (sha, "local", True)
    again = json.loads(ok(lbctl("--target", "local", "freeze", "--json")).stdout)["data"]["plugins"]
    assert [(p["id"], p["pin_reason"]) for p in again] == [(pid, "tested with 1.0")]


def test_show_on_langbot_lists_requirements_from_lbctls_copy_or_says_they_are_unknown(staging, lbctl, tmp_path,
                                                                                      author):
    """LangBot reports a plugin's manifest but not its requirements.txt: they come from the package lbctl
    uploaded (kept in its cache); without that copy they are unknown, which is not "none"."""
    pid = f"{author}/knobs"
    ok(lbctl("install", package(tmp_path, author)))

    listed = ok(lbctl("show", pid))
    ok(lbctl("cache", "clear"))
    unknown = ok(lbctl("show", pid))

    assert "\nRequirements:\n  langbot-plugin\n" in listed.stdout, listed.stdout
    assert "\nRequirements: unknown (" in unknown.stdout and "none" not in unknown.stdout.split("Requirements")[1]
    plugin = ok(lbctl("show", pid, "--json")).json["data"]["plugin"]
    assert (plugin["requirements"], plugin["requirements_known"]) == ([], False)
