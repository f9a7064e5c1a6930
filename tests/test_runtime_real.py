"""The host against the real LangBot Plugin Runtime (langbot-plugin 0.7.18) and the fixture plugin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lbctl.errors import LbctlError, NoHostError, PreconditionError
from lbctl.runtime.client import HostClient
from lbctl.runtime.process import free_port
from lbctl.runtime.storage import Storage
from test_runtime_support import (  # noqa: F401
    PLUGIN,
    alive,
    descendants,
    install,
    set_config,
    set_enabled,
    start_host,
    uninstall,
)

pytest.importorskip("langbot_plugin")
pytestmark = pytest.mark.runtime
CONFIG = {"greeting": "hello one", "count": 2, "mode": "b"}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers(pids: set[int]) -> set[int]:
    return {pid for pid in pids if f"run --tag {PLUGIN}" in cmdline(pid) and alive(pid)}


def runtimes(pids: set[int]) -> set[int]:
    return {pid for pid in pids if "langbot_plugin.cli.__init__ rt" in cmdline(pid) and alive(pid)}


def test_plugin_lifecycle(tmp_path, start_host):  # noqa: F811
    home = tmp_path / "home"
    install(home, CONFIG)
    host = start_host()
    client = host.client
    host.wait_state("running", timeout=40)
    assert client.status()["host"] is True and client.status()["runtime_version"] == "0.7.18"

    (tool,) = client.tools()
    assert (tool["plugin"], tool["name"], tool["parameters"]["required"]) == (PLUGIN, "echo_tool", ["text"])
    assert [c["name"] for c in client.commands(PLUGIN)] == ["probe"]
    assert client.call_tool(PLUGIN, "echo_tool", {"text": "x"}) == {"echo": "x", "greeting": "hello one"}
    assert client.run_command(PLUGIN, "probe ping a b") == [{"text": "pong 1"}, {"text": "pong 2 params=['a', 'b']"}]
    assert any("initialize() called" in line["text"] for line in client.logs(PLUGIN, 200))

    old_workers = workers(host.track())
    set_config(home, {**CONFIG, "greeting": "hello two"})
    assert client.reconcile_and_wait([PLUGIN], 30)[PLUGIN] == {"state": "running", "error": None}
    assert client.call_tool(PLUGIN, "echo_tool", {"text": "y"})["greeting"] == "hello two"
    assert old_workers and not workers(old_workers)  # the config change restarted the plugin

    assert client.restart(PLUGIN)["state"] == "running"
    set_enabled(home, False)
    assert client.reconcile_and_wait([PLUGIN], 30)[PLUGIN]["state"] == "disabled"
    assert client.tools() == [] and not workers(host.track())
    with pytest.raises(PreconditionError):
        client.call_tool(PLUGIN, "echo_tool", {"text": "z"})
    set_enabled(home, True)
    assert client.reconcile_and_wait([PLUGIN], 30)[PLUGIN]["state"] == "running"

    uninstall(home)
    assert client.reconcile_and_wait([PLUGIN], 30) == {PLUGIN: {"state": "removed", "error": None}}
    host.wait_for(lambda: not workers(host.track()), 15, "the plugin worker to exit")
    assert client.status()["plugins"] == []

    pids = host.track()
    assert runtimes(pids)
    assert host.stop(signal.SIGTERM) == 0
    assert not [pid for pid in pids if alive(pid)]
    assert not (home / "runtime" / "host.sock").exists()
    with pytest.raises(NoHostError):
        HostClient(home).tools()


def test_storage_and_identity_survive_restarts(tmp_path, start_host):  # noqa: F811
    home = tmp_path / "home"
    install(home, CONFIG)
    host = start_host()
    host.wait_state("running", timeout=40)
    identity = json.loads((home / "runtime" / "host.json").read_text())
    assert host.stop() == 0
    storage = Storage(home / "storage.db")
    assert storage.get("plugin", PLUGIN, "boot_marker") == b"booted"
    storage.set("plugin", PLUGIN, "survivor", b"from the first run")
    storage.close()
    assert os.stat(home / "storage.db").st_mode & 0o777 == 0o600

    host = start_host()
    host.wait_state("running", timeout=40)
    assert any("keys=['boot_marker', 'survivor']" in line["text"] for line in host.client.logs(PLUGIN, 200))
    after = json.loads((home / "runtime" / "host.json").read_text())
    assert {k: after[k] for k in ("instance_uuid", "workspace_uuid", "worker_policy")} == {
        k: identity[k] for k in ("instance_uuid", "workspace_uuid", "worker_policy")
    }
    assert after["installations"][PLUGIN]["uuid"] == identity["installations"][PLUGIN]["uuid"]
    assert os.stat(home / "runtime" / "host.json").st_mode & 0o777 == 0o600

    (runtime,) = runtimes(host.track())
    os.kill(runtime, signal.SIGKILL)  # a crashed runtime is restarted and the plugin re-applied
    host.wait_for(lambda: runtimes(host.track()) - {runtime}, 20, "a new runtime")
    host.wait_for(lambda: workers(host.track()) and host.client.status()["plugins"][0]["state"] == "running", 30)
    assert host.client.call_tool(PLUGIN, "echo_tool", {"text": "again"})["greeting"] == "hello one"
    pids = host.track()
    assert host.stop() == 0
    assert not [pid for pid in pids if alive(pid)]



class WsRuntime:
    """A dedicated runtime with a WebSocket control port and a token, as `--connect` expects."""

    TOKEN = "t" * 40

    def __init__(self, workdir: Path, port: int | None = None):
        workdir.mkdir(exist_ok=True)
        self.port = port or free_port()
        command = [sys.executable, "-m", "langbot_plugin.cli.__init__", "rt", "--skip-deps-check",
                   "--ws-control-port", str(self.port), "--ws-debug-port", str(free_port())]  # fmt: skip
        env = {**os.environ, "LANGBOT_PLUGIN_RUNTIME_CONTROL_TOKEN": self.TOKEN}
        with open(workdir / "rt.log", "ab") as log:
            self.proc = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True, stderr=log)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/control/ws"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def test_connect_to_a_dedicated_runtime_over_websocket(tmp_path, start_host):  # noqa: F811
    home = tmp_path / "home"
    install(home, CONFIG)
    runtimes = [WsRuntime(tmp_path / "rt")]
    try:
        args = ("--connect", runtimes[0].url, "--token-env", "RT_TOKEN")
        host = start_host({"RT_TOKEN": WsRuntime.TOKEN}, args)
        host.wait_state("running", timeout=40)
        assert host.client.status()["runtime_version"] == "0.7.18"
        assert host.client.call_tool(PLUGIN, "echo_tool", {"text": "ws"})["greeting"] == "hello one"

        runtimes[0].kill()  # the host reconnects with backoff and re-applies to the new runtime
        runtimes.append(WsRuntime(tmp_path / "rt", runtimes[0].port))
        host.wait_for(lambda: _greeting(host) == "hello one", 40, "the plugin to run on the new runtime")
        assert host.stop() == 0
        assert runtimes[1].proc.poll() is None  # a dedicated runtime is not ours to stop, its plugins are
        deadline = time.monotonic() + 10
        while workers(descendants(runtimes[1].proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not workers(descendants(runtimes[1].proc.pid))
        assert WsRuntime.TOKEN not in host.log.read_text()
    finally:
        for runtime in runtimes:
            runtime.kill()


def _greeting(host) -> str | None:
    try:
        return host.client.call_tool(PLUGIN, "echo_tool", {"text": "again"})["greeting"]
    except LbctlError:
        return None
