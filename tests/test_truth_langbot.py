"""Issue 17 §2 against a real LangBot 4.11.2: what lbctl reports is what LangBot holds.

- A sync that installs 15 plugins and sets each one's config exits 0 with every value held (LangBot refuses
  config writes in parallel; lbctl serialises them, asks again after a transient answer, and reads back).
- A sync stopped half way (Ctrl-C, the API key revoked, LangBot frozen or killed) reports every action with its
  true status. "What LangBot holds" is read from its own database (plugin_settings: the package's sha256 and the
  config of each plugin), the source of truth that its API shows only while a plugin is not restarting.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import PASSWORD, USER
from fakemarket import FakeMarket
from hardening_support import finish, spawn
from langbot_harness import LangBot
from pkgfactory import make_lbpkg

pytestmark = pytest.mark.langbot

CONFIG = [{"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
          {"name": "count", "type": "integer", "label": {"en_US": "Count"}, "default": 1, "required": False}]


class Batch:
    """N plugins of a fresh author, each with a config, and a plugins file that installs and configures them."""

    def __init__(self, tmp_path: Path, count: int, value: str = "set"):
        self.author = "t" + uuid.uuid4().hex[:8]
        self.packages: dict[str, Path] = {}
        self.sha256: dict[str, str] = {}
        for i in range(count):
            data = make_lbpkg(self.author, f"p{i}", "1.0.0", config=CONFIG)
            path = tmp_path / f"{self.author}-p{i}.lbpkg"
            path.write_bytes(data)
            plugin_id = f"{self.author}/p{i}"
            self.packages[plugin_id] = path
            self.sha256[plugin_id] = hashlib.sha256(data).hexdigest()
        self.tmp = tmp_path

    def config(self, plugin_id: str, value: str) -> dict:
        return {"greeting": f"{value} {plugin_id}", "count": int(plugin_id.rsplit("p", 1)[1]) + 2}

    def file(self, value: str) -> Path:
        path = self.tmp / f"{self.author}-{value}.toml"
        path.write_text("\n".join(
            f'[[plugin]]\nid = "{pid}"\npath = "{file}"\n[plugin.config]\n'
            f'greeting = "{self.config(pid, value)["greeting"]}"\ncount = {self.config(pid, value)["count"]}\n'
            for pid, file in self.packages.items()))
        return path


def holdings(server: LangBot, author: str) -> dict[str, tuple[str, dict]]:
    """plugin id -> (artifact sha256, config) as LangBot's database holds them (read-only)."""
    db = server.workdir / "data" / "langbot.db"
    for _ in range(50):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                rows = conn.execute("SELECT plugin_author, plugin_name, artifact_digest, config FROM plugin_settings "
                                    "WHERE plugin_author = ?", (author,)).fetchall()
            return {f"{a}/{n}": (digest, json.loads(config) if isinstance(config, str) else (config or {}))
                    for a, n, digest, config in rows}
        except sqlite3.OperationalError:  # LangBot is writing
            time.sleep(0.1)
    raise AssertionError("LangBot's database stayed locked")


def settled(server: LangBot, author: str, quiet: float = 3.0, patience: float = 90.0) -> dict[str, tuple[str, dict]]:
    """What LangBot holds once it has stopped changing (tasks an interrupted lbctl left running finish)."""
    deadline = time.monotonic() + patience
    last, since = holdings(server, author), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        now = holdings(server, author)
        if now != last:
            last, since = now, time.monotonic()
    return last


def assert_true_to(held: dict[str, tuple[str, dict]], batch: Batch, doc: dict, value: str) -> dict[str, list]:
    """Every action of the envelope says what LangBot holds: `done` is held, `failed` and `planned` are not;
    `unknown` may be either. Returns the actions by status."""
    by_status: dict[str, list] = {}
    for a in doc["data"]["actions"]:
        pid = a["id"]
        by_status.setdefault(a["status"], []).append((pid, a["action"]))
        if a["action"] == "install":
            is_held = pid in held and held[pid][0] == batch.sha256[pid]
        else:
            assert a["action"] == "config", a
            is_held = pid in held and held[pid][1] == batch.config(pid, value)
        if a["status"] == "done":
            assert is_held, (a, held.get(pid))
        elif a["status"] in ("failed", "planned"):
            assert not is_held, (a, held.get(pid))
        else:
            assert a["status"] == "unknown", a
    return by_status


def when(condition, what: str, proc=None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"lbctl ended before {what}"
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


@pytest.fixture
def server(langbot_server, monkeypatch):
    langbot, _market = langbot_server
    monkeypatch.setenv("LBCTL_API_KEY", langbot.api_key)
    yield langbot
    langbot.remove_all_plugins()


def test_a_sync_of_15_plugins_each_with_config_exits_0_and_langbot_holds_every_value(server, lbctl, tmp_path):
    batch = Batch(tmp_path, 15)
    for value, steps in (("first", 30), ("second", 15)):  # installs and configs, then only configs
        run = lbctl("--target", server.url, "sync", str(batch.file(value)), "--json")

        assert run.exit_code == 0, run.output
        actions = run.json["data"]["actions"]
        assert len(actions) == steps and {a["status"] for a in actions} == {"done"}, run.output
        held = holdings(server, batch.author)
        assert {pid: held[pid][1] for pid in batch.packages} == {pid: batch.config(pid, value)
                                                                  for pid in batch.packages}
        assert {pid: held[pid][0] for pid in batch.packages} == batch.sha256


def test_ctrl_c_in_the_middle_of_a_sync_reports_every_action_as_langbot_holds_it(server, tmp_path):
    batch = Batch(tmp_path, 10)
    proc = spawn(["--target", server.url, "sync", str(batch.file("set")), "--json"])
    started = time.monotonic()
    when(lambda: len(holdings(server, batch.author)) >= 3, "three installs", proc)
    proc.send_signal(signal.SIGINT)
    run = finish(proc, timeout=120, started=started)

    assert run.exit_code == 130, run.output
    doc = json.loads(run.stdout)
    assert (doc["status"], doc["errors"][0]["code"]) == ("error", "interrupted"), doc
    assert len(doc["data"]["actions"]) == 20, doc  # every install and config, with its status
    by_status = assert_true_to(settled(server, batch.author), batch, doc, "set")
    # Steps under way when Ctrl-C came were seen through: none is left unknown.
    assert by_status.get("done") and by_status.get("planned") and not by_status.get("unknown"), by_status


def _login_token(server: LangBot) -> str:
    request = urllib.request.Request(f"{server.url}/api/v1/user/auth", method="POST",
                                     data=json.dumps({"user": USER, "password": PASSWORD}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["data"]["token"]


def _as_user(server: LangBot, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}/api/v1{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_api_key_revoked_in_the_middle_of_a_sync_is_exit_3_and_every_action_true(server, lbctl, tmp_path,
                                                                                     monkeypatch):
    token = _login_token(server)
    key = _as_user(server, token, "POST", "/apikeys", {"name": f"lbctl-truth-{uuid.uuid4().hex[:6]}"})["data"]["key"]
    monkeypatch.setenv("LBCTL_API_KEY", key["key"])
    batch = Batch(tmp_path, 10)

    def revoke() -> None:  # once the first installs (four at a time) are surely seen through
        when(lambda: len(holdings(server, batch.author)) >= 6, "six installs")
        _as_user(server, token, "DELETE", f"/apikeys/{key['id']}")

    revoker = threading.Thread(target=revoke)
    revoker.start()
    try:
        run = lbctl("--target", server.url, "sync", str(batch.file("set")), "--json")
    finally:
        revoker.join()

    assert run.exit_code == 3, run.output
    doc = run.json
    assert doc["errors"][0]["code"] == "credentials" and len(doc["data"]["actions"]) == 20, doc
    by_status = assert_true_to(settled(server, batch.author), batch, doc, "set")
    assert by_status.get("done") and by_status.get("planned"), run.output
    assert len(by_status.get("unknown", [])) <= 4, by_status  # at most the steps under way (4 at a time)


@pytest.fixture
def own_langbot(tmp_path_factory, monkeypatch):
    """A LangBot of this test's own, to be frozen and killed."""
    with FakeMarket() as market:
        server = LangBot.start(tmp_path_factory.mktemp("own-langbot"), market_url=market.url)
        try:
            monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
            yield server
        finally:
            try:
                os.killpg(server.processes[-1].pid, signal.SIGCONT)  # never leave it stopped
            except (ProcessLookupError, IndexError):
                pass
            server.stop()


def test_langbot_frozen_then_killed_in_the_middle_of_a_sync_every_action_true(own_langbot, tmp_path):
    server = own_langbot
    langbot_group = server.processes[-1].pid  # LangBot itself; its runtime is a process group of its own

    # Frozen (SIGSTOP): lbctl's requests time out; what was under way is `unknown`, LangBot finishes it later.
    frozen = Batch(tmp_path, 10)
    proc = spawn(["--target", server.url, "--timeout", "15", "sync", str(frozen.file("set")), "--json"])
    started = time.monotonic()
    when(lambda: len(holdings(server, frozen.author)) >= 6, "six installs", proc)
    os.killpg(langbot_group, signal.SIGSTOP)
    try:
        run = finish(proc, timeout=150, started=started)
    finally:
        os.killpg(langbot_group, signal.SIGCONT)
    assert run.exit_code == 7, run.output
    doc = json.loads(run.stdout)
    assert doc["errors"][0]["code"] == "network" and len(doc["data"]["actions"]) == 20, doc
    by_status = assert_true_to(settled(server, frozen.author), frozen, doc, "set")
    assert by_status.get("done") and by_status.get("planned"), by_status
    assert len(by_status.get("unknown", [])) <= 4, by_status  # at most the steps under way (4 at a time)

    # Killed (SIGKILL): the connection is refused from then on.
    killed = Batch(tmp_path, 10)
    proc = spawn(["--target", server.url, "sync", str(killed.file("set")), "--json"])
    started = time.monotonic()
    when(lambda: len(holdings(server, killed.author)) >= 6, "six installs", proc)
    os.killpg(langbot_group, signal.SIGKILL)
    run = finish(proc, timeout=120, started=started)
    assert run.exit_code == 7, run.output
    doc = json.loads(run.stdout)
    assert doc["errors"][0]["code"] == "network" and len(doc["data"]["actions"]) == 20, doc
    by_status = assert_true_to(holdings(server, killed.author), killed, doc, "set")
    assert by_status.get("done") and by_status.get("planned"), by_status
    assert len(by_status.get("unknown", [])) <= 4, by_status
