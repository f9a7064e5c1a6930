"""The runtime commands end to end: `lbctl runtime serve` hosts the real langbot-plugin runtime and the other
commands act on it through the CLI, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from test_runtime_support import FIXTURE, PLUGIN, alive, start_host  # noqa: F401 - start_host is a fixture

pytestmark = pytest.mark.runtime


def cli(home, *args, timeout=90):
    env = {**os.environ, "LBCTL_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "lbctl", *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_live_commands_need_a_host(tmp_path):
    code, doc, _ = cli(tmp_path / "home", "tools")
    assert code == 6 and doc["errors"][0]["code"] == "no_runtime_host"
    assert "lbctl runtime serve" in doc["errors"][0]["hint"]
    code, doc, _ = cli(tmp_path / "home", "runtime", "status")
    assert code == 0 and doc["data"] == {"host": False, "runtime_version": None, "plugins": []}


def test_install_call_config_command_uninstall_under_a_live_host(tmp_path, start_host):
    home = tmp_path / "home"
    host = start_host(cli=True)
    host.wait_for(lambda: host.client.is_up(), 60, "host up")

    code, doc, err = cli(home, "install", str(FIXTURE))
    assert code == 0, err
    assert doc["data"]["live"] == [{"id": PLUGIN, "state": "running", "error": None}]

    code, doc, _ = cli(home, "runtime", "status")
    assert doc["data"]["host"] is True and doc["data"]["runtime_version"] == "0.7.18"
    assert [(p["id"], p["state"]) for p in doc["data"]["plugins"]] == [(PLUGIN, "running")]

    code, doc, _ = cli(home, "tools", PLUGIN)
    assert [t["name"] for t in doc["data"]["tools"]] == ["echo_tool"]
    code, doc, _ = cli(home, "call-tool", PLUGIN, "echo_tool", "--args", '{"text": "hello"}')
    assert code == 0 and doc["data"]["result"] == {"echo": "hello", "greeting": "hi"}

    code, doc, _ = cli(home, "config", "set", PLUGIN, "greeting=howdy")
    assert code == 0 and doc["data"]["live"][0]["state"] == "running"
    code, doc, _ = cli(home, "call-tool", PLUGIN, "echo_tool", "--args", '{"text": "again"}')
    assert doc["data"]["result"]["greeting"] == "howdy"

    code, doc, _ = cli(home, "run-command", PLUGIN, "probe ping")
    assert code == 0 and [f["text"] for f in doc["data"]["result"]][0] == "pong 1"

    code, doc, _ = cli(home, "commands")
    assert [(c["plugin"], c["name"]) for c in doc["data"]["commands"]] == [(PLUGIN, "probe")]
    code, doc, _ = cli(home, "logs", PLUGIN, "-n", "500")
    assert code == 0 and any("initialize() called" in line["text"] for line in doc["data"]["lines"])
    code, doc, _ = cli(home, "restart", PLUGIN)
    assert code == 0 and doc["data"]["plugins"][0]["state"] == "running"
    code, doc, _ = cli(home, "list")
    assert [(p["id"], p["status"]) for p in doc["data"]["plugins"]] == [(PLUGIN, "running")]
    code, doc, _ = cli(home, "show", PLUGIN)
    assert doc["data"]["plugin"]["status"] == "running"

    code, doc, _ = cli(home, "disable", PLUGIN)
    assert code == 0 and doc["data"]["live"][0]["state"] == "disabled"
    code, doc, _ = cli(home, "enable", PLUGIN)
    assert doc["data"]["live"][0]["state"] == "running"

    code, doc, _ = cli(home, "uninstall", PLUGIN)
    assert code == 0 and doc["data"]["live"][0]["state"] == "removed"
    workers = host.track()
    assert host.stop(signal.SIGTERM) == 0
    assert not [pid for pid in workers if alive(pid)]
