"""The host's error paths, against tests/fakeruntime.py instead of the real runtime."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

import pytest

from lbctl import __version__
from lbctl.errors import NotFoundError, NotInstalledError, PluginFailedError, PreconditionError
from lbctl.runtime.client import RuntimeActionError
from test_runtime_support import FAKE, PLUGIN, alive, install, set_config, set_enabled, start_host  # noqa: F401


@pytest.fixture
def fake(tmp_path, start_host):  # noqa: F811
    log = tmp_path / "fake.jsonl"
    env = {"LBCTL_RUNTIME_COMMAND": f"{sys.executable} {FAKE}", "FAKE_RUNTIME_LOG": str(log)}

    def start(config: dict | None = None, args: tuple = ()):
        install(tmp_path / "home", config if config is not None else {"greeting": "hi"})
        return start_host(env, args)

    start.events = lambda kind: [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == kind]
    return start


def test_plugin_that_fails_to_start_is_reported_failed(fake):
    host = fake({"fake": "fail"})
    entry = host.wait_state("failed")
    assert entry["error"] == "fake dependency failure"
    assert any("fake dependency failure" in line["text"] for line in host.client.logs(PLUGIN))
    with pytest.raises(PreconditionError):
        host.client.call_tool(PLUGIN, "fake_tool", {})


def test_command_stream_error_frame_is_an_error(fake):
    host = fake()
    host.wait_state("running")
    assert host.client.run_command(PLUGIN, "!fake ok") == [{"text": "got fake ok"}]
    with pytest.raises(RuntimeActionError, match="boom"):  # the runtime's own refusal
        host.client.run_command(PLUGIN, "fake boom")
    with pytest.raises(PluginFailedError) as failed:  # what the plugin raised, relayed by the runtime
        host.client.run_command(PLUGIN, "fake raise")
    assert (failed.value.message, failed.value.plugin) == (f"{PLUGIN} failed: KeyError: 'x'", PLUGIN)
    with pytest.raises(NotFoundError):
        host.client.run_command(PLUGIN, "nosuch")


def test_logs_are_attributed_only_when_provable_and_can_be_followed(fake, tmp_path):
    host = fake()
    host.wait_state("running")
    lines = host.client.follow(PLUGIN, n=5)
    expected = [f"launching plugin {PLUGIN}", "worker up, revision 1"]  # named by the runtime; written by the worker
    assert [next(lines)["text"] for _ in expected] == expected
    set_config(tmp_path / "home", {"greeting": "again"})
    expected = [f"launching plugin {PLUGIN}", "worker up, revision 2"]
    assert [next(lines)["text"] for _ in expected] == expected
    lines.close()

    mine = host.client.logs(PLUGIN)
    assert {line["plugin"] for line in mine} == {PLUGIN}
    assert [(line["level"], line["origin"]) for line in mine if line["text"].startswith("worker up")] == [
        ("WARNING", "main.py:7"), ("WARNING", "main.py:7")]
    everything = host.client.logs(None)
    # The runtime logged these right after the plugin's lines, and they name no plugin: the host's alone.
    stray = [line for line in everything if line["text"] == "housekeeping that concerns no plugin"]
    assert len(stray) == 2 and {line["plugin"] for line in stray} == {None}
    (closed,) = [line for line in everything if "标准输出流已关闭" in line["text"]]
    assert (closed["level"], closed["plugin"]) == ("INFO", None) and "expected when a plugin restarts" in closed["text"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]) for line in everything)
    with pytest.raises(NotInstalledError):
        host.client.logs("nobody/here")


def test_runtime_that_dies_is_restarted_with_the_same_handshake(fake):
    host = fake(args=("--pypi-index-url", "http://127.0.0.1:9/simple"))
    host.wait_state("running")
    with pytest.raises(Exception):
        host.client.call_tool(PLUGIN, "die", {})
    host.wait_for(lambda: len(fake.events("handshake")) == 2, what="a second handshake")
    host.wait_state("running")
    assert host.client.call_tool(PLUGIN, "fake_tool", {"a": 1})["args"] == {"a": 1}
    first, second = fake.events("handshake")
    assert first["data"] == second["data"]
    starts = fake.events("start")
    assert all(s["argv"][s["argv"].index("--pypi-index-url") + 1] == "http://127.0.0.1:9/simple" for s in starts)
    assert all(s["cwd"].endswith("/home/runtime") for s in starts)
    assert len(fake.events("upload")) == 1  # the artifact cached on disk is reused, as by the real runtime
    assert host.stop() == 0
    assert not any(alive(s["pid"]) for s in starts)


def test_every_host_api_gets_an_answer(fake):
    host = fake()
    host.wait_state("running")
    replies = {e["action"]: {k: v for k, v in e.items() if k in ("ok", "data", "message")} for e in fake.events("host_api")}
    assert replies == {
        "get_langbot_version": {"ok": True, "data": {"version": f"lbctl {__version__}", "host": "lbctl", "api_features": []}},
        "get_llm_models": {"ok": True, "data": {"llm_models": []}},
        "invoke_llm": {"ok": False, "message": "LookupError: no LLM model 'm1': lbctl runs plugins without LangBot and has none"},
        "no_such_api": {"ok": False, "message": "NotImplementedError: host API 'no_such_api' is not provided by lbctl"},
    }  # fmt: skip


def test_config_file_is_served_only_when_the_config_names_it(fake, tmp_path):
    files = tmp_path / "home" / "files"
    files.mkdir(parents=True)
    (files / "k1.txt").write_bytes(b"file body")
    (files / "k2.txt").write_bytes(b"secret")
    host = fake({"file": "k1.txt"})
    host.wait_state("running")
    set_config(tmp_path / "home", {"file": "../state.json"})
    host.wait_for(lambda: len(fake.events("apply")) == 2, what="re-apply after the config change")
    host.wait_state("running")
    served, refused = [e for e in fake.events("host_api") if e["action"] == "get_config_file"]
    assert served["ok"] and served["data"] == {"file_base64": "ZmlsZSBib2R5"}
    assert not refused["ok"] and "PermissionError" in refused["message"]
    revisions = [e["revision"] for e in fake.events("apply")]
    assert revisions[1] == revisions[0] + 1


def test_sigint_also_stops_everything(fake):
    host = fake()
    host.wait_state("running")
    pids = set(host.track())
    assert host.stop(signal.SIGINT) == 0
    assert pids and not any(alive(pid) for pid in pids)
    assert not (host.home / "runtime" / "host.sock").exists()


def test_second_host_on_the_same_environment_is_refused(fake, start_host):  # noqa: F811
    host = fake()
    host.wait_state("running")
    second = start_host({"LBCTL_RUNTIME_COMMAND": f"{sys.executable} {FAKE}"})
    assert second.proc.wait(30) == 6
    assert "already serving" in host.log.read_text()
    assert os.stat(host.home / "runtime" / "host.sock").st_mode & 0o777 == 0o600


def test_a_disabled_plugin_stays_disabled_whatever_a_probe_in_flight_says(fake, tmp_path):
    """A liveness probe answered while the plugin is being disabled (and removed) is an old answer: it must not
    make the host report the plugin running again."""
    host = fake({"fake": "slow"})
    host.wait_state("running")
    set_enabled(tmp_path / "home", False)

    assert host.client.reconcile_and_wait([PLUGIN], 30)[PLUGIN] == {"state": "disabled", "error": None}
    time.sleep(2)
    assert [(p["id"], p["state"]) for p in host.client.status()["plugins"]] == [(PLUGIN, "disabled")]
