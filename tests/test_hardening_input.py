"""Issue 11, items 5, 6 (bad input), 9, 10, 12 and 14: what comes from outside is printed as text, special files are
refused before they are read, a damaged state.json is exit 6 with a way out, failed checks say why, and doctor
names the runtime's exposed debug port."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import FIXTURE_ID
from fakemarket import FakeMarket
from hardening_support import one_line_error, run_cli
from pkgfactory import make_lbpkg

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "Evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eedoc"  # retitle the terminal, clear it, C1 CSI, bidi override
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_escaped(text: str) -> None:
    assert not any(ch in text for ch in RAW), repr(text)
    assert "\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202eedoc" in text, text


@pytest.fixture
def hostile_package(tmp_path) -> Path:
    path = tmp_path / "evil.lbpkg"
    path.write_bytes(make_lbpkg("acme", "evil", "1.0.0", label=HOSTILE, description=HOSTILE,
                                config=[{"name": "title", "type": "string", "description": {"en_US": HOSTILE}},
                                        {"name": "tags", "type": "array[string]"}]))
    return path


# item 5: text from outside ----------------------------------------------------------------------------------


def test_inspect_and_show_print_labels_and_descriptions_escaped(lbctl, hostile_package):
    for run in (lbctl("inspect", hostile_package), (lbctl("install", hostile_package), lbctl("show", "acme/evil"))[1]):
        assert run.exit_code == 0, run.output
        assert_escaped(run.stdout)
        assert not any(ch in run.stderr for ch in RAW)


def test_market_search_and_show_print_records_escaped(lbctl, monkeypatch):
    with FakeMarket() as market:
        monkeypatch.setenv("LBCTL_INDEX_URL", market.url)
        market.add(make_lbpkg("acme", "evil", "1.0.0", label=HOSTILE, description=HOSTILE))
        for args in (("market", "search"), ("market", "show", "acme/evil")):
            run = lbctl(*args)
            assert run.exit_code == 0, run.output
            assert not any(ch in run.stdout + run.stderr for ch in RAW), repr(run.stdout)
        assert "\\u001b]0;pwned" in lbctl("market", "show", "acme/evil").stdout


def test_config_values_are_text_never_markup(lbctl, hostile_package):
    assert lbctl("install", hostile_package).exit_code == 0
    assert lbctl("config", "set", "acme/evil", f"title={HOSTILE}", "tags=a,[/x] and [bold]").exit_code == 0

    shown = lbctl("config", "show", "acme/evil")

    assert shown.exit_code == 0, shown.output
    assert "array[string]" in shown.stdout
    assert "[/x] and [bold]" in shown.stdout
    assert not any(ch in shown.stdout for ch in RAW)
    got = lbctl("config", "get", "acme/evil", "title")
    assert_escaped(got.stdout)
    assert lbctl("config", "get", "acme/evil", "title", "--json").json["data"]["value"] == HOSTILE


def test_a_markup_like_value_of_an_unknown_key_does_not_crash_config_show(lbctl, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("config", "set", FIXTURE_ID, "greeting=[/x] and [bold]", "extra=[/]", "--force").exit_code == 0

    shown = lbctl("config", "show", FIXTURE_ID)

    assert shown.exit_code == 0, shown.output
    assert "[/x] and [bold]" in shown.stdout and "[/]" in shown.stdout


# item 6: bad input that used to be exit 10 ------------------------------------------------------------------


def test_binary_bytes_on_stdin_for_key_dash_are_exit_2(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = (home / "state.json").read_bytes()

    run = run_cli("config", "set", FIXTURE_ID, "greeting=-", stdin=b"\xff\xfe\x00binary\x80")

    one_line_error(run, 2)
    assert "UTF-8" in run.stderr
    assert (home / "state.json").read_bytes() == before


@pytest.mark.parametrize("args", [("install", "a/{id}"), ("install", "{id}/b==1.0"), ("market", "show", "a/{id}"),
                                  ("download", "a/{id}", "-d", "out")])
def test_a_huge_plugin_id_is_exit_2(lbctl, tmp_path, args):
    huge = "x" * 100_000
    args = [a.format(id=huge) if "{id}" in a else str(tmp_path / a) if a == "out" else a for a in args]

    run = lbctl(*args)

    one_line_error(run, 2)
    assert len(run.stderr) < 2000, "the message does not repeat 100 KB"


# item 9: special files ----------------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "fifo.lbpkg"
    os.mkfifo(path)
    return path


@pytest.fixture
def filed(lbctl, tmp_path) -> str:
    """An installed plugin with a `file` config item."""
    path = tmp_path / "filed.lbpkg"
    path.write_bytes(make_lbpkg("acme", "filed", "1.0.0", config=[{"name": "doc", "type": "file"}]))
    assert lbctl("install", path).exit_code == 0
    return "acme/filed"


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "directory"])
@pytest.mark.parametrize("args", [("install", "{}"), ("inspect", "{}"), ("config", "import", "{id}", "{}"),
                                  ("sync", "{}"), ("install", "-r", "{}"), ("config", "set", "{id}", "doc=@{}")],
                         ids=["install", "inspect", "config-import", "sync", "install-r", "config-set-file"])
def test_special_files_are_refused_before_they_are_read(filed, tmp_path, fifo, home, special, args):
    path = {"fifo": str(fifo), "/dev/zero": "/dev/zero", "directory": str(tmp_path)}[special]
    before = (home / "state.json").read_bytes()

    run = run_cli(*[a.replace("{id}", filed).replace("{}", path) for a in args], timeout=20)

    assert run.exit_code == 2, run.output
    assert run.max_rss_mb < 100, run.output
    assert (home / "state.json").read_bytes() == before


# item 10: state.json is validated when it is loaded ----------------------------------------------------------

SHA = "f0c24c3bcc60196a8d92f81a65534f1236c237a9d880cf3208f73005fd9bcb63"


def record(**changes) -> dict:
    base = {"id": FIXTURE_ID, "version": "0.1.0", "source": "local", "sha256": SHA,
            "installed_at": "2025-01-01T00:00:00Z", "spec": None, "origin": None, "enabled": True,
            "previous_sha256": None, "previous_version": None, "pinned": False, "pin_reason": None}
    return {**base, **changes}


def state(plugins: dict | None = None, config=None) -> bytes:
    return json.dumps({"schema": 1, "revision": 1, "plugins": {FIXTURE_ID: record()} if plugins is None else plugins,
                       "config": {} if config is None else config}).encode()


DAMAGED = {
    "a plugin's config is a list": state(config={FIXTURE_ID: []}),
    "a numeric version": state({FIXTURE_ID: record(version=1)}),
    "a sha256 that is a path": state({FIXTURE_ID: record(sha256="../../x")}),
    "a previous sha256 that is a path": state({FIXTURE_ID: record(previous_sha256="../../../etc/passwd")}),
    "enabled as a string": state({FIXTURE_ID: record(enabled="yes")}),
    "pinned as a number": state({FIXTURE_ID: record(pinned=1)}),
    "a record filed under another id": state({"other/id": record()}),
    "an id with a slash too many": state({"../x/y": record(id="../x/y")}),
    "a source that is not a string": state({FIXTURE_ID: record(source=["local"])}),
    "a previous origin that is a list": state({FIXTURE_ID: record(previous_origin=["/x"])}),
    "deep nesting": b'{"schema": 1, "plugins": {}, "config": {"a/b": {"k": ' + b"[" * 100_000 + b"]" * 100_000
                    + b"}}}",
    "nesting JSON can read but Python cannot copy":
        state(config={FIXTURE_ID: {"k": json.loads("[" * 800 + "]" * 800)}}),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_state_is_exit_6_with_how_to_recover(lbctl, fixture_lbpkg, home, case):
    home.mkdir()
    (home / "state.json").write_bytes(DAMAGED[case])
    (home / "packages").mkdir()
    (home / "packages" / f"{SHA}.lbpkg").write_bytes(fixture_lbpkg.read_bytes())

    for args in (("list",), ("show", FIXTURE_ID), ("verify",), ("install", fixture_lbpkg), ("uninstall", FIXTURE_ID),
                 ("config", "show", FIXTURE_ID), ("freeze",)):
        run = lbctl(*args)
        one_line_error(run, 6)
        assert "state.json" in run.stderr and "freeze" in run.stderr, run.output
    doc = lbctl("list", "--json").json
    assert doc["errors"][0]["code"] == "state_corrupt"
    doctor = lbctl("doctor", "--offline", "--json")
    assert doctor.exit_code == 1 and doctor.json["data"]["checks"][0]["ok"] is False, doctor.output
    assert (home / "state.json").read_bytes() == DAMAGED[case]


def test_a_config_value_nested_too_deep_is_refused(lbctl, tmp_path, home):
    path = tmp_path / "deep.lbpkg"
    path.write_bytes(make_lbpkg("acme", "deep", "1.0.0", config=[{"name": "extra", "type": "json"}]))
    assert lbctl("install", path).exit_code == 0
    before = (home / "state.json").read_bytes()

    run = lbctl("config", "set", "acme/deep", "extra=" + "[" * 800 + "]" * 800)

    one_line_error(run, 2)
    assert (home / "state.json").read_bytes() == before
    assert lbctl("config", "set", "acme/deep", "extra=" + "[" * 60 + "]" * 60).exit_code == 0
    assert lbctl("config", "set", "acme/deep", "extra=[1]").exit_code == 0


def test_a_valid_state_with_every_field_loads(lbctl, fixture_lbpkg, home):
    home.mkdir()
    (home / "packages").mkdir()
    (home / "packages" / f"{SHA}.lbpkg").write_bytes(fixture_lbpkg.read_bytes())
    (home / "state.json").write_bytes(state({FIXTURE_ID: record(spec="x", origin="/p", previous_sha256=SHA,
                                                                 previous_version="0.0.1", pinned=True,
                                                                 pin_reason="why")},
                                            config={FIXTURE_ID: {"deep": [[[1]]]}, "gone/plugin": {}}))

    assert lbctl("list").exit_code == 0
    assert lbctl("verify").exit_code == 0


# item 12: failed checks say why ------------------------------------------------------------------------------


def test_verify_with_problems_says_why_in_errors(lbctl, tmp_path, home):
    ids = []
    for name in ("one", "two", "three"):
        path = tmp_path / f"{name}.lbpkg"
        path.write_bytes(make_lbpkg("acme", name, "1.0.0"))
        assert lbctl("install", path).exit_code == 0
        ids.append(f"acme/{name}")
    stored = {pid: home / "packages" / f"{lbctl('show', pid, '--json').json['data']['plugin']['sha256']}.lbpkg"
              for pid in ids}
    stored["acme/one"].write_bytes(b"tampered")
    stored["acme/two"].unlink()

    run = lbctl("verify", "--json")

    assert run.exit_code == 1
    doc = run.json
    assert doc["status"] != "success"
    assert {(e["code"], e["plugin"]) for e in doc["errors"]} == {("sha256_mismatch", "acme/one"),
                                                                  ("package_missing", "acme/two")}
    assert all(e["message"] and e["hint"] for e in doc["errors"])
    assert doc["data"]["ok"] == ["acme/three"]


def test_doctor_with_a_failing_check_says_why_in_errors(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    next((home / "packages").glob("*.lbpkg")).write_bytes(b"tampered")

    doc = lbctl("doctor", "--offline", "--json").json

    assert doc["exit_code"] == 1 and doc["errors"], doc
    assert doc["errors"][0]["message"].startswith("packages: ")


# item 14: the runtime's debug port ----------------------------------------------------------------------------


def test_doctor_names_the_debug_port_of_a_running_host(lbctl, home, monkeypatch):
    from lbctl.runtime import client

    (home / "runtime").mkdir(parents=True)
    (home / "runtime" / "host.sock").touch()
    status = {"host": True, "runtime_version": "0.7.18", "debug_port": 41234, "plugins": []}
    monkeypatch.setattr(client.HostClient, "status", lambda self: status)

    detail = {c["name"]: c for c in lbctl("doctor", "--offline", "--json").json["data"]["checks"]}["host"]["detail"]

    assert "port 41234" in detail and "all interfaces" in detail and "firewall" in detail


def test_the_security_notes_say_what_to_do_about_the_debug_port():
    notes = (REPO / "README.md").read_text(encoding="utf-8")
    for words in ("0.0.0.0", "/healthz", "firewall", "--connect", "lbctl doctor"):
        assert words in notes, words


def test_owner_only_modes_are_kept_for_a_file_stored_by_config(lbctl, filed, tmp_path, home):
    (tmp_path / "doc.txt").write_text("hello")
    assert lbctl("config", "set", filed, f"doc=@{tmp_path / 'doc.txt'}").exit_code == 0
    for path in (home / "files").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("leaves", ["a FIFO", "a link to /dev/zero", "bytes that are not UTF-8"])
def test_an_edit_that_leaves_no_text_file_is_refused(lbctl, fixture_lbpkg, tmp_path, home, leaves):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    action = {"a FIFO": 'rm "$1" && mkfifo "$1"', "a link to /dev/zero": 'rm "$1" && ln -s /dev/zero "$1"',
              "bytes that are not UTF-8": "printf 'greeting = \"\\377\\376\"' > \"$1\""}[leaves]
    editor = tmp_path / "editor.sh"
    editor.write_text(f"#!/bin/sh\n{action}\n")
    editor.chmod(0o755)
    before = (home / "state.json").read_bytes()

    run = run_cli("config", "edit", FIXTURE_ID, env={"VISUAL": str(editor)}, timeout=20)

    one_line_error(run, 2)
    assert (home / "state.json").read_bytes() == before
