"""Issue 17 §2, what a real LangBot cannot be made to do on cue: a config write answered 500 although LangBot
stored it, a 500 or 429 that passes, a task that outlives --timeout, the key revoked between two installs.
LangBot is a stateful fake at the transport (respx); lbctl is the real CLI. Each test checks that every action
in the envelope says what the fake then holds."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
import respx
import yaml

from pkgfactory import make_lbpkg

URL = "https://langbot.test"
API = f"{URL}/api/v1"
CONFIG = [{"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi"}]
ERROR_500 = {"code": "internal_error", "msg": "Internal server error"}


def ok(data: dict | None = None) -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "msg": "ok", "data": data})


class FakeLangBot:
    """Plugins, their config and tasks, like LangBot 4.11.2 answers them. Hooks change one route's answer."""

    def __init__(self):
        self.plugins: dict[str, dict] = {}  # id -> {"manifest": ..., "sha256": ..., "config": {}}
        self.tasks: dict[int, str] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.key = "lbk_test"
        self.put_hook = None  # (plugin_id, values) -> Response | None: called before a PUT is stored
        self.after_put = None  # (plugin_id, values) -> Response | None: called after it is stored
        self.install_hook = None  # (plugin_id) -> Response | None
        self.task_done = lambda task_id: True  # False: the task stays running
        self.hold_installs = True  # False: an install task is accepted and nothing is installed
        self.puts: list[str] = []
        self.installs: list[str] = []

    def mount(self, router: respx.MockRouter) -> None:
        router.route(url__startswith=API).mock(side_effect=self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/system/info" and request.headers.get("X-API-Key") != self.key:
            return httpx.Response(401, json={"code": "invalid_authentication", "msg": "Invalid authentication"})
        path, method = request.url.path.removeprefix("/api/v1"), request.method
        with self.lock:
            if path == "/system/info":
                return ok({"version": "v4.11.2"})
            if path == "/plugins" and method == "GET":
                return ok({"plugins": [self._container(pid) for pid in self.plugins]})
            if path == "/plugins/install/local":
                return self._install(request)
            if match := re.fullmatch(r"/system/tasks/(\d+)", path):
                task = int(match[1])
                status = self.tasks[task] if self.task_done(task) else "running"
                return ok({"id": task, "status": status})
            if match := re.fullmatch(r"/plugins/([^/]+/[^/]+)/config", path):
                return self._config(match[1], request)
            if (match := re.fullmatch(r"/plugins/([^/]+/[^/]+)", path)) and method == "DELETE":
                self.plugins.pop(match[1], None)
                return self._task("succeeded")
        return httpx.Response(404, json={"code": -1, "msg": "not found"})

    def _container(self, plugin_id: str) -> dict:
        plugin = self.plugins[plugin_id]
        return {"manifest": {"manifest": plugin["manifest"]}, "install_source": "local", "status": "initialized",
                "enabled": True, "install_info": {"_certification": {"artifact_digest": plugin["sha256"]}}}

    def _task(self, status: str) -> httpx.Response:
        task = next(self.ids)
        self.tasks[task] = status
        return ok({"task_id": task})

    def _install(self, request: httpx.Request) -> httpx.Response:
        data = _uploaded(request)
        manifest = yaml.safe_load(zipfile.ZipFile(io.BytesIO(data)).read("manifest.yaml"))
        plugin_id = f"{manifest['metadata']['author']}/{manifest['metadata']['name']}"
        self.installs.append(plugin_id)
        hooked = self.install_hook(plugin_id) if self.install_hook else None
        if hooked is not None and hooked.status_code == 429:
            return hooked
        old = self.plugins.get(plugin_id, {}).get("config", {})
        if self.hold_installs:
            self.plugins[plugin_id] = {"manifest": manifest, "sha256": hashlib.sha256(data).hexdigest(),
                                       "config": old}
        return hooked or self._task("succeeded")

    def _config(self, plugin_id: str, request: httpx.Request) -> httpx.Response:
        if plugin_id not in self.plugins:
            return httpx.Response(404, json={"code": -1, "msg": "plugin not found"})
        if request.method == "GET":
            return ok({"config": self.plugins[plugin_id]["config"]})
        values = json.loads(request.content)
        self.puts.append(plugin_id)
        hooked = self.put_hook(plugin_id, values) if self.put_hook else None
        if hooked is not None:
            return hooked
        self.plugins[plugin_id]["config"] = values
        return (self.after_put(plugin_id, values) if self.after_put else None) or ok({})


def _uploaded(request: httpx.Request) -> bytes:
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    for part in request.content.split(b"--" + boundary):
        if b'name="file"' in part:
            return part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    raise AssertionError("no file in the upload")


@pytest.fixture
def fake(monkeypatch):
    from lbctl import langbot

    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    monkeypatch.setattr(langbot, "BUSY_WINDOW", 1.0, raising=False)
    langbot_fake = FakeLangBot()
    with respx.mock(assert_all_called=False) as router:
        langbot_fake.mount(router)
        yield langbot_fake


def packages(tmp_path: Path, count: int) -> dict[str, Path]:
    found = {}
    for i in range(count):
        path = tmp_path / f"acme-p{i}.lbpkg"
        path.write_bytes(make_lbpkg("acme", f"p{i}", "1.0.0", config=CONFIG))
        found[f"acme/p{i}"] = path
    return found


def plugins_file(tmp_path: Path, found: dict[str, Path], value: str = "set") -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text("\n".join(f'[[plugin]]\nid = "{pid}"\npath = "{file}"\n[plugin.config]\ngreeting = "{value}"\n'
                              for pid, file in found.items()))
    return path


def assert_true_to(fake: FakeLangBot, doc: dict, value: str = "set") -> dict[str, list]:
    """Every action says what the fake holds; returns the actions by status."""
    by_status: dict[str, list] = {}
    for a in doc["data"]["actions"]:
        by_status.setdefault(a["status"], []).append((a["id"], a["action"]))
        held = (a["id"] in fake.plugins if a["action"] == "install"
                else fake.plugins.get(a["id"], {}).get("config", {}).get("greeting") == value)
        if a["status"] == "done":
            assert held, a
        elif a["status"] in ("failed", "planned"):
            assert not held, a
        else:
            assert a["status"] == "unknown", a
    return by_status


def test_a_config_write_answered_500_that_langbot_stored_is_done(lbctl, fake, tmp_path):
    """LangBot 4.11.2 stores the config, then fails to re-apply the plugin and answers 500."""
    fake.plugins["acme/p0"] = {"manifest": yaml.safe_load(yaml.safe_dump(_manifest("p0"))), "sha256": "0" * 64,
                               "config": {"greeting": "hi"}}
    fake.after_put = lambda pid, values: httpx.Response(500, json=ERROR_500)

    run = lbctl("--target", URL, "config", "set", "acme/p0", "greeting=set", "--json")

    assert run.exit_code == 0, run.output
    assert [(a["action"], a["status"]) for a in run.json["data"]["actions"]] == [("config", "done")]
    assert fake.plugins["acme/p0"]["config"] == {"greeting": "set"} and fake.puts == ["acme/p0"]


def test_a_config_write_refused_while_busy_is_sent_again_until_it_is_stored(lbctl, fake, tmp_path):
    fake.plugins["acme/p0"] = {"manifest": _manifest("p0"), "sha256": "0" * 64, "config": {"greeting": "hi"}}
    answers = iter([httpx.Response(500, json=ERROR_500), httpx.Response(429, json={"code": "busy", "msg": "busy"})])
    fake.put_hook = lambda pid, values: next(answers, None)

    run = lbctl("--target", URL, "config", "set", "acme/p0", "greeting=set", "--json")

    assert run.exit_code == 0, run.output
    assert fake.plugins["acme/p0"]["config"] == {"greeting": "set"} and fake.puts == ["acme/p0"] * 3


def test_a_config_write_that_keeps_failing_is_failed_and_not_held(lbctl, fake, tmp_path):
    fake.plugins["acme/p0"] = {"manifest": _manifest("p0"), "sha256": "0" * 64, "config": {"greeting": "hi"}}
    fake.put_hook = lambda pid, values: httpx.Response(500, json=ERROR_500)

    run = lbctl("--target", URL, "config", "set", "acme/p0", "greeting=set", "--json")

    assert run.exit_code == 6, run.output
    assert [(a["action"], a["status"]) for a in run.json["data"]["actions"]] == [("config", "failed")]
    assert fake.plugins["acme/p0"]["config"] == {"greeting": "hi"} and len(fake.puts) >= 2


def test_an_install_whose_task_outlives_the_timeout_is_done_when_langbot_holds_it(lbctl, fake, tmp_path):
    found = packages(tmp_path, 2)
    fake.task_done = lambda task: False  # the tasks never end, but the fake holds each package at once

    run = lbctl("--target", URL, "--timeout", "1", "install", *map(str, found.values()), "--json")

    assert run.exit_code == 0, run.output
    assert {(a["id"], a["status"]) for a in run.json["data"]["actions"]} == {("acme/p0", "done"), ("acme/p1", "done")}


def test_an_install_whose_task_outlives_the_timeout_unheld_is_unknown_not_failed(lbctl, fake, tmp_path):
    found = packages(tmp_path, 1)
    fake.task_done = lambda task: False
    fake.hold_installs = False  # LangBot accepted the task and has not installed anything yet

    run = lbctl("--target", URL, "--timeout", "1", "install", str(found["acme/p0"]), "--json")

    assert run.exit_code == 7, run.output
    assert [(a["id"], a["status"]) for a in run.json["data"]["actions"]] == [("acme/p0", "unknown")]
    assert "had not finished task 1" in run.json["errors"][0]["message"]


def test_the_key_revoked_between_installs_reports_each_action_as_langbot_holds_it(lbctl, fake, tmp_path):
    found = packages(tmp_path, 8)

    def revoke_after_two(plugin_id):
        if len(fake.installs) == 2:
            fake.key = "revoked"
        return None

    fake.install_hook = revoke_after_two
    run = lbctl("--target", URL, "sync", str(plugins_file(tmp_path, found)), "--json")

    assert run.exit_code == 3, run.output
    doc = run.json
    assert (doc["status"], doc["errors"][0]["code"]) == ("error", "credentials"), doc
    assert len(doc["data"]["actions"]) == 16  # every step is there: an install and a config per plugin
    by_status = assert_true_to(fake, doc)
    assert by_status.get("planned") and set(by_status) <= {"done", "failed", "planned", "unknown"}, by_status


def test_a_table_of_a_stopped_sync_names_every_action_then_the_error(lbctl, fake, tmp_path):
    found = packages(tmp_path, 3)
    fake.install_hook = lambda pid: (setattr(fake, "key", "revoked") if len(fake.installs) == 2 else None)

    run = lbctl("--target", URL, "sync", str(plugins_file(tmp_path, found)))

    assert run.exit_code == 3, run.output
    lines = run.stdout.splitlines()
    assert len(lines) == 6 and any(line.startswith("would ") and "not started" in line for line in lines), run.output
    assert run.stderr.splitlines()[-2].startswith("error: "), run.output


def _manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Plugin",
            "metadata": {"author": "acme", "name": name, "version": "1.0.0", "label": {"en_US": name}},
            "spec": {"config": CONFIG, "components": {}}, "execution": {"python": {"path": "main.py", "attr": "X"}}}
