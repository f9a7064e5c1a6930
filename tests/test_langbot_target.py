"""The same commands on a real LangBot 4.11.2 (spec §8), started once per session by tests/langbot_harness.py,
with the suite's fake marketplace as its Space. Every test works on its own plugin ids and leaves the
instance empty."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import PASSWORD, REPO, USER, Run
from fakemarket import FakeMarket
from langbot_harness import LangBot, free_port
from pkgfactory import make_lbpkg

pytestmark = pytest.mark.langbot

CONFIG = [
    {"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
    {"name": "api_key", "type": "string", "label": {"en_US": "Key"}, "default": "", "required": False},
]
DICE = REPO / "examples" / "lbctl-examples-dice-0.1.0.lbpkg"


class Instance:
    """The session's LangBot, the fake market, and every request lbctl sent to LangBot during the test."""

    def __init__(self, server: LangBot, market: FakeMarket, lbctl, tmp_path: Path):
        self.server, self.market, self._lbctl, self.tmp = server, market, lbctl, tmp_path
        self.url = server.url
        self.author = "t" + uuid.uuid4().hex[:8]
        self.requests: list[tuple[str, str]] = []

    def __call__(self, *args: str, input: str = "") -> Run:
        return self._lbctl("--target", self.url, *args, input=input)

    def json(self, *args: str, code: int = 0, input: str = "") -> dict:
        run = self(*args, "--json", input=input)
        assert run.exit_code == code, run.output
        return run.json

    def package(self, name: str, version: str = "1.0.0", **kwargs) -> Path:
        path = self.tmp / f"{self.author}-{name}-{version}.lbpkg"
        path.write_bytes(make_lbpkg(self.author, name, version, config=kwargs.pop("config", CONFIG), **kwargs))
        return path

    def publish(self, name: str, *versions: str) -> None:
        for version in versions:
            self.market.add(make_lbpkg(self.author, name, version, config=CONFIG))

    def plugin(self, plugin_id: str) -> dict | None:
        answer = self.server.api(f"/plugins/{plugin_id}")
        return answer["data"]["plugin"] if answer["status"] == 200 else None

    def config(self, plugin_id: str) -> dict:
        return self.server.api(f"/plugins/{plugin_id}/config")["data"]["config"]

    def mutating(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m in ("POST", "PUT", "DELETE", "PATCH")]


@pytest.fixture
def lb(langbot_server, lbctl, tmp_path, monkeypatch) -> Instance:
    server, market = langbot_server
    instance = Instance(server, market, lbctl, tmp_path)
    monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
    send = httpx.Client.send

    def recording(client, request, **kwargs):
        if str(request.url).startswith(server.url):
            instance.requests.append((request.method, request.url.path))
        return send(client, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", recording)
    yield instance
    server.remove_all_plugins()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def actions(doc: dict) -> list[tuple[str, str, str]]:
    return [(a["id"], a["action"], a["status"]) for a in doc["data"]["actions"]]


# --- install, list, show ---------------------------------------------------------------------------------


def test_install_a_local_package_then_list_and_show_it_with_provenance(lb):
    path = lb.package("alpha", commands=("hello",))
    pid = f"{lb.author}/alpha"

    doc = lb.json("install", str(path))

    assert actions(doc) == [(pid, "install", "done")]
    assert lb.plugin(pid)["install_source"] == "local"
    row = next(p for p in lb.json("list")["data"]["plugins"] if p["id"] == pid)
    assert (row["version"], row["source"], row["status"], row["sha256"]) == ("1.0.0", "local", "initialized",
                                                                                sha256(path))
    shown = lb.json("show", pid)["data"]["plugin"]
    assert (shown["source"], shown["origin"], shown["sha256"]) == ("local", str(path.resolve()), sha256(path))
    assert [c["name"] for c in shown["components"]["Command"]] == ["hello"]
    assert {r["name"]: r["default"] for r in shown["config"]} == {"greeting": "hi", "api_key": ""}


def test_show_gives_the_requirements_of_the_package_lbctl_sent_or_resolved(lb):
    """LangBot does not report a plugin's requirements (issue 19): lbctl reads them from the package it uploaded
    or resolved, kept in its cache by sha256."""
    lb.publish("resolved", "1.0.0")
    lb.json("install", str(lb.package("sent")), f"{lb.author}/resolved")
    for name in ("sent", "resolved"):
        assert lb.json("show", f"{lb.author}/{name}")["data"]["plugin"]["requirements"] == ["langbot-plugin"]


def test_marketplace_specs_are_resolved_against_langbots_marketplace_and_installed_exactly(lb):
    lb.publish("pinned", "1.0.0", "1.1.0", "2.0.0")
    lb.publish("ranged", "1.0.0", "1.5.0", "2.0.0")

    lb.json("install", f"{lb.author}/pinned==1.0.0", f"{lb.author}/ranged>=1.0,<2")

    for name, version in (("pinned", "1.0.0"), ("ranged", "1.5.0")):
        plugin = lb.plugin(f"{lb.author}/{name}")
        assert plugin["install_source"] == "marketplace"
        assert plugin["install_info"]["plugin_version"] == version
    shown = lb.json("show", f"{lb.author}/ranged")["data"]["plugin"]
    assert (shown["spec"], shown["origin"]) == (f"{lb.author}/ranged>=1.0,<2", lb.market.url)


def test_a_url_install_is_uploaded_and_recorded_by_langbot_as_local(lb):
    lb.publish("fromurl", "0.3.0")
    url = f"{lb.market.url}/api/v1/marketplace/plugins/download/{lb.author}/fromurl/0.3.0"

    doc = lb.json("install", url)

    assert actions(doc) == [(f"{lb.author}/fromurl", "install", "done")]
    assert any("local install" in w for w in doc["warnings"]), doc["warnings"]
    assert lb.plugin(f"{lb.author}/fromurl")["install_source"] == "local"
    assert lb.json("show", f"{lb.author}/fromurl")["data"]["plugin"]["origin"] == url


def test_an_invalid_package_is_refused_before_anything_is_sent(lb):
    bad = lb.tmp / "bad.lbpkg"
    bad.write_bytes(make_lbpkg(lb.author, "bad", "1.0.0").replace(b"kind: Plugin", b"kind: Plugim"))
    before = lb.server.plugin_ids()

    doc = lb.json("install", str(bad), code=2)

    assert doc["errors"][0]["code"] == "invalid_package"
    assert lb.mutating() == [] and lb.server.plugin_ids() == before


# --- update, outdated ----------------------------------------------------------------------------------


def test_outdated_and_update_all_touch_only_marketplace_installs(lb):
    lb.publish("market", "1.0.0", "1.1.0")
    local = lb.package("mine")
    lb.json("install", f"{lb.author}/market==1.0.0", str(local))
    market_id, local_id = f"{lb.author}/market", f"{lb.author}/mine"

    report = lb.json("outdated")["data"]
    assert report["outdated"] == [{"id": market_id, "version": "1.0.0", "latest": "1.1.0"}]
    assert [(n["id"], n["source"]) for n in report["not_updatable"]] == [(local_id, "local")]

    doc = lb.json("update", "--all")
    assert (market_id, "update", "done") in actions(doc)
    assert (local_id, "skip", "skipped") in actions(doc)
    assert doc["data"]["summary"] == "updated 1 of 1"
    assert lb.plugin(market_id)["install_info"]["plugin_version"] == "1.1.0"
    assert lb.json("update", market_id)["data"]["actions"][0]["reason"] == "up to date"

    refused = lb.json("update", local_id, code=6)
    assert refused["errors"][0]["code"] == "not_updatable" and "install" in refused["errors"][0]["hint"]


# --- config ---------------------------------------------------------------------------------------------


def test_config_with_a_secret_is_masked_everywhere_and_kept_across_edits(lb, tmp_path, monkeypatch):
    pid = f"{lb.author}/conf"
    lb.json("install", str(lb.package("conf")))
    secret = "s3cr3t-" + uuid.uuid4().hex

    lb.json("config", "set", pid, "greeting=hello", "api_key=-", input=secret + "\n")
    editor = tmp_path / "editor.py"
    editor.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('greeting = \"hello\"', 'greeting = \"edited\"'))\n")
    monkeypatch.setenv("VISUAL", f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}")
    edited = lb.json("config", "edit", pid)

    assert actions(edited) == [(pid, "config", "done")]
    assert lb.config(pid) == {"greeting": "edited", "api_key": "***"}  # the secret is still stored
    outputs = [lb("config", "show", pid), lb("config", "show", pid, "--json"), lb("config", "get", pid, "api_key"),
               lb("show", pid, "--json"), lb("list", "--json"), lb("freeze", "--with-config"),
               lb("config", "export", pid)]
    for run in outputs:
        assert run.exit_code == 0, run.output
        assert secret not in run.stdout + run.stderr
    assert lb.json("config", "get", pid, "greeting")["data"]["value"] == "edited"
    assert lb.json("config", "get", pid, "api_key")["data"]["value"] == "***"
    assert lb.json("config", "set", pid, "greeting=oops=1", "nope=1", code=2)["errors"][0]["code"] == "invalid_config"
    assert lb.config(pid)["greeting"] == "edited"


def test_uninstall_keeps_config_for_a_reinstall_and_purge_does_not(lb):
    path, pid = lb.package("keep"), f"{lb.author}/keep"
    lb.json("install", str(path))
    lb.json("config", "set", pid, "greeting=kept", "api_key=-", input="topsecret\n")

    removed = lb.json("uninstall", pid)
    assert actions(removed) == [(pid, "uninstall", "done")]
    assert any("api_key" in w for w in removed["warnings"])
    assert lb.plugin(pid) is None

    again = lb.json("install", str(path))
    assert lb.config(pid) == {"greeting": "kept"}
    assert any("api_key" in w and "config set" in w for w in again["warnings"])

    lb.json("uninstall", pid, "--purge", "--yes")
    lb.json("install", str(path))
    assert lb.config(pid) == {}


# --- sync, freeze, fleet ---------------------------------------------------------------------------------


def plugins_file(lb: Instance, *entries: str) -> Path:
    path = lb.tmp / "plugins.toml"
    path.write_text("\n".join(entries))
    return path


def test_sync_applies_a_plugins_file_and_a_second_run_sends_nothing_that_changes(lb):
    lb.publish("synced", "1.0.0", "1.2.0")
    local = lb.package("vendored")
    file = plugins_file(
        lb, f'[[plugin]]\nid = "{lb.author}/synced"\nversion = "==1.0.0"\n[plugin.config]\ngreeting = "from file"\n'
            'api_key = "filesecret"\n',
        f'[[plugin]]\nid = "{lb.author}/vendored"\npath = "{local.name}"\nsha256 = "{sha256(local)}"\n')

    first = lb.json("sync", str(file))
    assert sorted(actions(first)) == sorted([(f"{lb.author}/synced", "install", "done"),
                                             (f"{lb.author}/synced", "config", "done"),
                                             (f"{lb.author}/vendored", "install", "done")])
    assert lb.config(f"{lb.author}/synced") == {"greeting": "from file", "api_key": "***"}

    lb.requests.clear()
    second = lb.json("sync", str(file))
    assert [a for a in second["data"]["actions"] if a["status"] != "skipped"] == []
    assert lb.requests and lb.mutating() == []


def test_sync_prune_uninstalls_what_the_file_does_not_list(lb):
    keep, drop = lb.package("stay"), lb.package("go")
    lb.json("install", str(keep), str(drop))
    file = plugins_file(lb, f'[[plugin]]\nid = "{lb.author}/stay"\npath = "{keep.name}"\n')
    lb.requests.clear()

    planned = lb.json("sync", str(file), "--prune", "--dry-run")
    assert actions(planned) == [(f"{lb.author}/go", "uninstall", "planned")] and lb.mutating() == []
    lb.json("sync", str(file), "--prune")
    ids = lb.server.plugin_ids()
    assert f"{lb.author}/stay" in ids and f"{lb.author}/go" not in ids


def test_freeze_locally_then_sync_to_langbot_promotes_plugins_and_config(lb, lbctl):
    lb.publish("promoted", "2.0.0")
    local = lb.package("trial")
    local_ids = (f"{lb.author}/promoted", f"{lb.author}/trial")
    env = ("--index-url", lb.market.url)
    for args in (("install", f"{lb.author}/promoted", str(local)),
                 ("config", "set", local_ids[1], "greeting=tried locally"),
                 ("config", "set", local_ids[0], "api_key=promoted-secret")):
        assert lbctl(*env, *args).exit_code == 0
    frozen = lbctl(*env, "freeze", "--with-config", "--include-secrets")
    assert frozen.exit_code == 0, frozen.output
    local.unlink()  # the frozen file names it; the package is found again by its sha256
    file = plugins_file(lb, frozen.stdout)

    lb.json("sync", str(file))

    assert lb.plugin(local_ids[0])["install_source"] == "marketplace"
    assert lb.plugin(local_ids[1])["install_source"] == "local"
    # The local environment stores defaults too: they are part of what is promoted.
    assert lb.config(local_ids[1]) == {"greeting": "tried locally", "api_key": ""}
    assert lb.config(local_ids[0]) == {"greeting": "hi", "api_key": "***"}
    lb.requests.clear()
    lb.json("sync", str(file))
    assert lb.mutating() == []


def test_fleet_sync_goes_on_when_one_target_is_down(lb, lbctl):
    path = lb.package("fleet")
    file = plugins_file(lb, f'[[plugin]]\nid = "{lb.author}/fleet"\npath = "{path.name}"\n')
    down = f"http://127.0.0.1:{free_port()}"

    run = lbctl("--target", lb.url, "--target", down, "sync", str(file), "--json")

    doc = run.json
    assert run.exit_code == 7 and doc["exit_code"] == 7 and doc["status"] == "partial"
    up, gone = doc["data"]["targets"]
    assert (up["target"], up["status"], up["exit_code"]) == (lb.url, "success", 0)
    assert (gone["target"], gone["status"], gone["exit_code"]) == (down, "error", 7)
    assert f"{lb.author}/fleet" in lb.server.plugin_ids()
    table = lbctl("--target", f"{lb.url},{down}", "list")
    rows = [line.split()[:3] for line in table.stdout.splitlines()[1:3]]
    assert rows == [[lb.url, "ok", "1"], [down, "error", "(7)"]] and table.exit_code == 7, table.output
    sections = lbctl("--target", f"{lb.url},{down}", "-v", "list")
    assert f"== {lb.url} ==" in sections.stdout and f"== {down} ==" in sections.stdout and sections.exit_code == 7


# --- errors ----------------------------------------------------------------------------------------------


def test_a_missing_or_wrong_key_is_exit_3(lb, monkeypatch):
    monkeypatch.delenv("LBCTL_API_KEY")
    assert lb.json("list", code=3)["errors"][0]["code"] == "credentials"
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_wrong")
    doc = lb.json("list", code=3)
    assert "refused the API key" in doc["errors"][0]["message"] and "lbk_wrong" not in json.dumps(doc)


def test_enable_and_disable_have_no_api_on_langbot(lb):
    pid = f"{lb.author}/toggle"
    lb.json("install", str(lb.package("toggle")))
    for verb in ("enable", "disable"):
        doc = lb.json(verb, pid, code=6)
        assert "no API to enable or disable" in doc["errors"][0]["message"]
    assert lb.mutating() == [("POST", "/api/v1/plugins/install/local")]


def test_a_failed_task_gives_langbots_reason_with_a_stored_login(lb, lbctl):
    lb.publish("flaky", "1.0.0")
    assert lbctl("--index-url", lb.market.url, "download", f"{lb.author}/flaky", "-d", str(lb.tmp)).exit_code == 0
    lbctl("target", "add", "staging", lb.url)
    lb.market.fail_requests = 10  # LangBot's own download now fails; lbctl uses its cache (--offline)

    try:
        without = lbctl("--target", "staging", "--offline", "install", f"{lb.author}/flaky", "--json")
        assert without.exit_code == 1 and "without saying why" in without.json["errors"][0]["message"]
        assert lbctl("target", "login", "staging", "--user", USER, input=PASSWORD + "\n").exit_code == 0
        lb.market.fail_requests = 10
        withlogin = lbctl("--target", "staging", "--offline", "install", f"{lb.author}/flaky", "--json")
    finally:
        lb.market.fail_requests = 0
    error = withlogin.json["errors"][0]
    assert withlogin.exit_code != 0 and "without saying why" not in error["message"], error
    assert PASSWORD not in withlogin.stdout + withlogin.stderr
    assert f"{lb.author}/flaky" not in lb.server.plugin_ids()


def test_a_langbot_whose_runtime_is_not_connected_is_exit_6(lb):
    lb.server.stop_runtime()
    try:
        doc = lb.json("list", code=6)
        assert "runtime" in doc["errors"][0]["hint"]
        assert lb.json("install", str(lb.package("norun")), code=6)["errors"][0]["code"] == "precondition"
    finally:
        lb.server.start_runtime()
        deadline = time.monotonic() + 60
        while not lb.server.ready() and time.monotonic() < deadline:
            time.sleep(0.2)


def test_pin_and_rollback_work_on_langbot_too(lb):
    lb.publish("held", "1.0.0", "2.0.0")
    pid = f"{lb.author}/held"
    lb.json("install", f"{pid}==1.0.0")
    lb.json("pin", pid, "--reason", "waiting for 2.x")
    assert lb.json("update", "--all")["data"]["actions"][0]["reason"] == "pinned: waiting for 2.x"
    assert lb.json("update", pid, code=6)["errors"][0]["hint"].startswith("Unpin")
    lb.json("unpin", pid)
    lb.json("update", pid)
    assert lb.plugin(pid)["install_info"]["plugin_version"] == "2.0.0"

    back = lb.json("rollback", pid)
    assert actions(back) == [(pid, "rollback", "done")]
    plugin = lb.plugin(pid)
    assert (plugin["install_source"], plugin["install_info"]["plugin_version"]) == ("marketplace", "1.0.0")
    assert lb.json("show", pid)["data"]["plugin"]["pinned"] is False


def test_install_r_and_specs_in_one_call(lb):
    lb.publish("named", "1.0.0")
    listed = lb.package("listed")
    file = plugins_file(lb, f'[[plugin]]\nid = "{lb.author}/listed"\npath = "{listed.name}"\n')
    doc = lb.json("install", "-r", str(file), f"{lb.author}/named")
    assert sorted(actions(doc)) == [(f"{lb.author}/listed", "install", "done"), (f"{lb.author}/named", "install", "done")]
    twice = lb.json("install", "-r", str(file), str(listed), code=2)
    assert "both named and listed" in twice["errors"][0]["message"]


def test_live_commands_on_langbot_through_its_api_or_exit_6(lb):
    pid = "lbctl-examples/dice"
    lb.json("install", str(DICE))
    tools = lb.json("tools", pid)["data"]["tools"]
    assert [(t["plugin"], t["name"]) for t in tools] == [(pid, "roll")] and tools[0]["parameters"]["properties"]
    assert [c["name"] for c in lb.json("commands")["data"]["commands"]] == ["dice"]
    assert lb.json("logs", pid)["data"]["lines"] == []  # LangBot 4.11 with runtime 0.7.x keeps none (doc §10.3)
    pipeline = lb.server.api("/pipelines", method="POST", body={"name": f"lbctl-{lb.author}"})["data"]["uuid"]
    result = lb.json("run-command", pid, "dice roll 2", "--pipeline", pipeline)["data"]["result"]
    assert "rolled" in json.dumps(result), result
    for args in (("call-tool", pid, "roll"), ("restart", pid), ("runtime", "status"), ("logs", "--host"),
                 ("run-command", pid, "dice roll 2")):
        doc = lb.json(*args, code=6)
        assert doc["errors"][0]["code"] in ("precondition", "no_api"), doc
    assert lb.json("runtime", "serve", code=6)["errors"][0]["message"].endswith("hosts the local one")


def test_doctor_checks_a_langbot_target(lb, lbctl):
    doc = lb.json("doctor")
    assert [(c["name"], c["ok"]) for c in doc["data"]["checks"]] == [
        ("reachable", True), ("authenticated", True), ("version", True), ("runtime", True), ("marketplace", True)]
    down = lbctl("--target", f"http://127.0.0.1:{free_port()}", "doctor", "--json")
    assert down.exit_code == 1
    checks = {c["name"]: c for c in down.json["data"]["checks"]}
    assert not checks["reachable"]["ok"] and "unreachable" in checks["reachable"]["detail"]
    assert down.json["errors"] and down.json["status"] != "success"
