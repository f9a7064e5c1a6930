"""Issue 17 §2 and §4: what lbctl reports is what happened, and bad input from outside is a one-line error.

A rollback to a package that is not the plugin's is refused; --debug adds a traceback and changes nothing else; a
signal during the last write of a command gives exactly one JSON document; LangBot answers nested 500 deep, a
marketplace URL holding ESC, a target's notes replaced by a FIFO, and a web server standing in for the marketplace
each get their exit code, never 10 or a hang. (bench/hostile_matrix.py covers the files and URLs by the hundred:
tests/test_hardening_hostile.py.)
"""

from __future__ import annotations

import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import respx

from conftest import FIXTURE_ID, tree_snapshot
from hardening_support import one_line_error, run_cli, run_injected, strace_usable, syscall_counts
from pkgfactory import make_lbpkg

URL = "https://langbot.test"
PLUGINS = f"{URL}/api/v1/plugins"


def ok(data: dict) -> dict:
    return {"code": 0, "msg": "ok", "data": data}


# --- rollback ------------------------------------------------------------------------------------------------


def test_a_rollback_to_another_plugins_package_is_refused_and_changes_nothing(lbctl, tmp_path, home):
    paths = {}
    for name, version in (("one", "1.0.0"), ("one", "2.0.0"), ("two", "1.0.0")):
        paths[name, version] = tmp_path / f"{name}-{version}.lbpkg"
        paths[name, version].write_bytes(make_lbpkg("mk", name, version))
    for key in (("one", "1.0.0"), ("two", "1.0.0"), ("one", "2.0.0")):
        assert lbctl("install", paths[key]).exit_code == 0
    state = json.loads((home / "state.json").read_text())
    assert state["plugins"]["mk/one"]["previous_version"] == "1.0.0"
    state["plugins"]["mk/one"]["previous_sha256"] = state["plugins"]["mk/two"]["sha256"]  # edited by hand
    (home / "state.json").write_text(json.dumps(state))
    assert lbctl("list").exit_code == 0  # it tidies: mk/one 1.0.0's package, no longer referred to, goes
    before = tree_snapshot(home)

    run = lbctl("rollback", "mk/one", "--yes")

    one_line_error(run, 5)
    assert "mk/two 1.0.0" in run.stderr and "nothing to roll back to" in run.stderr, run.output
    assert tree_snapshot(home) == before
    listed = {p["id"]: p["version"] for p in lbctl("list", "--json").json["data"]["plugins"]}
    assert listed == {"mk/one": "2.0.0", "mk/two": "1.0.0"}


def test_a_rollback_to_the_plugins_own_previous_package_still_works(lbctl, tmp_path):
    for version in ("1.0.0", "2.0.0"):
        path = tmp_path / f"one-{version}.lbpkg"
        path.write_bytes(make_lbpkg("mk", "one", version))
        assert lbctl("install", path).exit_code == 0

    run = lbctl("rollback", "mk/one", "--yes", "--json")

    assert run.exit_code == 0, run.output
    assert run.json["data"]["actions"][0]["to"] == "1.0.0"
    assert lbctl("list", "--json").json["data"]["plugins"][0]["version"] == "1.0.0"


# --- --debug -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["LBCTL_DEBUG=1", "--debug"])
def test_debug_keeps_the_exit_code_and_the_envelope_and_adds_the_traceback(lbctl, monkeypatch, how):
    if how == "--debug":
        run = lbctl("--debug", "--json", "show", "no/such")
    else:
        monkeypatch.setenv("LBCTL_DEBUG", "1")
        run = lbctl("--json", "show", "no/such")

    assert run.exit_code == 5, run.output
    doc = json.loads(run.stdout)  # exactly one document
    assert (doc["exit_code"], doc["errors"][0]["code"]) == (5, "not_installed")
    assert run.stderr.startswith("Traceback (most recent call last):"), run.output
    assert "NotInstalledError: no/such is not installed" in run.stderr


def test_debug_of_a_table_command_prints_the_error_line_after_the_traceback(lbctl):
    run = lbctl("--debug", "show", "no/such")

    assert run.exit_code == 5 and run.stdout == "", run.output
    assert "Traceback" in run.stderr and run.stderr.splitlines()[-2] == "error: no/such is not installed"


# --- a signal during the last write ------------------------------------------------------------------------


@pytest.mark.skipif(strace_usable() is not None, reason=str(strace_usable()))
def test_sigint_at_any_write_gives_exactly_one_json_document(lbctl, fixture_lbpkg):
    """strace delivers SIGINT at the Nth write of `config set --json`, for every N: the writes of state.json
    and the write of the result itself. Whatever happened, stdout holds one document and it tells the exit."""
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    args = ["--json", "config", "set", FIXTURE_ID, "greeting=signalled"]
    count = syscall_counts(args, ("write",))["write"]
    assert count >= 2

    exits = []
    for when in range(1, count + 1):
        run = run_injected(args, "write", when, "signal=SIGINT")
        lines = run.stdout.splitlines()
        assert len(lines) == 1, f"write #{when}: {run.output}"
        doc = json.loads(lines[0])
        assert doc["exit_code"] == run.exit_code in (0, 130), f"write #{when}: {run.output}"
        assert "Traceback" not in run.stderr, run.output
        exits.append(run.exit_code)
    assert 0 in exits  # the signal came during the result, which was printed whole and alone


# --- LangBot answers ---------------------------------------------------------------------------------------


def deep(levels: int):
    value = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


PLUGIN = {"manifest": {"manifest": {"metadata": {"author": "acme", "name": "echo", "version": "1.0.0"},
                                    "spec": {"config": [{"name": "greeting", "type": "string", "default": "hi"},
                                                        {"name": "extra", "type": "json"}]}}},
          "install_source": "marketplace", "status": "initialized"}


@pytest.mark.parametrize("args", [("config", "show", "acme/echo"), ("config", "get", "acme/echo", "extra"),
                                  ("show", "acme/echo"), ("freeze", "--with-config"),
                                  ("config", "export", "acme/echo")], ids=lambda a: " ".join(a[:2]))
def test_a_langbot_config_value_nested_500_deep_is_exit_8(lbctl, monkeypatch, args):
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json=ok({}))
        respx.get(PLUGINS).respond(json=ok({"plugins": [PLUGIN]}))
        respx.get(f"{PLUGINS}/acme/echo").respond(json=ok({"plugin": PLUGIN}))
        respx.get(f"{PLUGINS}/acme/echo/config").respond(json=ok({"config": {"greeting": "x", "extra": deep(500)}}))
        run = lbctl("--target", URL, *args)

    one_line_error(run, 8)
    assert "nests more than" in run.stderr, run.output


def test_doctor_fails_the_marketplace_check_of_a_langbot_whose_url_holds_esc(lbctl, monkeypatch):
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    info = {"cloud_service_url": "http://127.0.0.1:1/\x1b[2J\x1b[31m", "version": "v4.11.2"}
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json=ok(info))
        respx.get(PLUGINS).respond(json=ok({"plugins": []}))
        respx.route(host="langbot.test").respond(json=ok({}))
        run = lbctl("--target", URL, "doctor", "--json")

    assert run.exit_code == 1, run.output
    checks = {c["name"]: c for c in run.json["data"]["checks"]}
    assert checks["marketplace"]["ok"] is False
    assert "\\u001b" in checks["marketplace"]["detail"] and "\x1b" not in run.stdout + run.stderr


def test_the_notes_of_a_target_replaced_by_a_fifo_are_exit_6_not_a_hang(lbctl, monkeypatch, home):
    from lbctl.targets.langbot import _notes_name

    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    notes = home.joinpath("targets", _notes_name(URL))
    notes.parent.mkdir(parents=True)
    os.mkfifo(notes)

    stop = threading.Event()

    def unblock() -> None:  # a reader that waits for a writer would hang for ever: give it one after 5 s
        if stop.wait(5):
            return
        while not stop.is_set():
            try:
                fd = os.open(notes, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until someone reads
            except OSError:
                stop.wait(0.05)
                continue
            os.write(fd, b"{}")
            os.close(fd)
            return

    writer = threading.Thread(target=unblock, daemon=True)
    writer.start()
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json=ok({}))
        respx.get(PLUGINS).respond(json=ok({"plugins": [PLUGIN]}))
        run = lbctl("--target", URL, "list")
    stop.set()
    writer.join()

    one_line_error(run, 6)
    assert "FIFO" in run.stderr, run.output


# --- a web server in place of the marketplace ---------------------------------------------------------------


@pytest.fixture
def web_site(tmp_path):
    """A plain web server (HTML pages, HTML 404s), as `python -m http.server` is."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><body>hello</body></html>")

    class Pages(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "site"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("args", [("install", "acme/weather"), ("market", "show", "acme/weather"),
                                  ("download", "acme/weather==1.0.0", "-d", "out")], ids=lambda a: a[0])
def test_an_index_url_that_answers_html_404_pages_is_exit_8_not_not_found(lbctl, web_site, home, args):
    run = lbctl("--index-url", web_site, *args)

    one_line_error(run, 8)
    assert "not the marketplace's API" in run.stderr and "text/html" in run.stderr, run.output
    assert not home.exists() or not (home / "state.json").exists()


def test_the_marketplaces_own_404_is_still_not_found(lbctl, monkeypatch):
    from fakemarket import FakeMarket

    with FakeMarket() as market:
        run = lbctl("--index-url", market.url, "install", "acme/weather")

    one_line_error(run, 5)
    assert "No plugin named acme/weather" in run.stderr


# --- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e300"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_exit_2(lbctl, value):
    run = lbctl("--timeout", value, "list")

    one_line_error(run, 2)
    assert "--timeout" in run.stderr


def test_a_user_config_of_dev_null_is_no_settings(tmp_path):
    run = run_cli("list", env={"LBCTL_CONFIG": os.devnull})

    assert run.exit_code == 0, run.output


def test_a_user_config_that_is_a_fifo_is_exit_6_not_a_hang(tmp_path):
    fifo = tmp_path / "config-fifo.toml"
    os.mkfifo(fifo)

    run = run_cli("list", env={"LBCTL_CONFIG": str(fifo)}, timeout=20)

    one_line_error(run, 6)
    assert "FIFO" in run.stderr


def test_an_unusable_path_for_a_home_below_a_dangling_link_is_exit_6_for_reading_too(lbctl, tmp_path, home):
    home.symlink_to(tmp_path / "gone")

    run = lbctl("list")

    one_line_error(run, 6)
    assert "symbolic link" in run.stderr and "does not exist" in run.stderr
    assert not Path(tmp_path / "gone").exists()
