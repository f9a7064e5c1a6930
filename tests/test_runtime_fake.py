"""The host's error paths, against tests/fakeruntime.py instead of the real runtime."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from lbctl.errors import NotFoundError, NotInstalledError, PreconditionError
from lbctl.runtime.client import RuntimeActionError
from test_runtime_support import FAKE, PLUGIN, alive, install, set_config, start_host  # noqa: F401


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
    with pytest.raises(RuntimeActionError, match="boom"):
        host.client.run_command(PLUGIN, "fake boom")
    with pytest.raises(NotFoundError):
        host.client.run_command(PLUGIN, "nosuch")


def test_logs_are_attributed_and_can_be_followed(fake, tmp_path):
    host = fake()
    host.wait_state("running")
    lines = host.client.follow(PLUGIN, n=5)
    assert "launching plugin probeauthor/hello-probe" in next(lines)["text"]
    set_config(tmp_path / "home", {"greeting": "again"})
    assert next(lines)["text"].endswith("launching plugin probeauthor/hello-probe")
    lines.close()
    assert all(line["plugin"] == PLUGIN for line in host.client.logs(PLUGIN))
    assert host.client.logs(None)  # every line of the runtime
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


def test_unknown_host_api_gets_a_clear_error(fake):
    host = fake()
    host.wait_state("running")
    (reply,) = [e for e in fake.events("host_api") if e["action"] == "get_langbot_version"]
    assert reply == {"event": "host_api", "action": "get_langbot_version", "ok": False,
                     "message": "NotImplementedError: host API 'get_langbot_version' is not provided by lbctl"}  # fmt: skip


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
