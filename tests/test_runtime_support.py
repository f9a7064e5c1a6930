"""Helpers common to the runtime tests: write an environment, run `python -m lbctl.runtime.host`, reap it."""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lbctl.models import Record
from lbctl.runtime.client import HostClient
from lbctl.state import Environment

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"
FIXTURE = PLUGINS / "lbctl-tests-hello-0.1.0.lbpkg"
PLUGIN = "lbctl-tests/hello"
FAULTY, HOSTAPI = "lbctl-tests/faulty", "lbctl-tests/hostapi"
FAKE = ROOT / "tests" / "fakeruntime.py"


def package(plugin: str) -> Path:
    """The built package of one of the tests' own plugins (tests/plugins/<name>/)."""
    return PLUGINS / f"{plugin.replace('/', '-')}-0.1.0.lbpkg"


def install(home: Path, config: dict, *, plugin: str = PLUGIN, enabled: bool = True) -> None:
    """Record `plugin` (one of tests/plugins) in the environment, as `lbctl install` would."""
    path = package(plugin)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    env = Environment(home)
    with env.transaction() as state:
        env.store_package(path, sha)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        state.plugins[plugin] = Record(plugin, "0.1.0", "local", sha, now, enabled=enabled)
        state.config[plugin] = config


def set_config(home: Path, config: dict, plugin: str = PLUGIN) -> None:
    with Environment(home).transaction() as state:
        state.config[plugin] = config


def set_enabled(home: Path, enabled: bool, plugin: str = PLUGIN) -> None:
    with Environment(home).transaction() as state:
        record = state.plugins[plugin]
        state.plugins[plugin] = Record(**{**record.to_json(), "enabled": enabled})


def uninstall(home: Path, plugin: str = PLUGIN) -> None:
    with Environment(home).transaction() as state:
        del state.plugins[plugin]


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class HostProcess:
    def __init__(self, home: Path, log: Path, env: dict | None = None, args: tuple = (), cli: bool = False):
        self.home, self.log, self.cli = home, log, cli
        self.client = HostClient(home, timeout=30)
        self.env = {**os.environ, **(env or {})}
        self.args = args
        self.seen: set[int] = set()
        self.proc: subprocess.Popen | None = None

    def start(self) -> HostProcess:
        module = ["lbctl", "runtime", "serve"] if self.cli else ["lbctl.runtime.host"]
        command = [sys.executable, "-m", *module, "--home", str(self.home), "-v", *self.args]
        with open(self.log, "ab") as stream:
            self.proc = subprocess.Popen(command, cwd=ROOT, stderr=stream, env=self.env, start_new_session=True)
        return self

    def track(self) -> set[int]:
        self.seen |= descendants(self.proc.pid)
        return self.seen

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.track()
            assert self.proc.poll() is None, f"host exited with {self.proc.returncode}:\n{self.log.read_text()}"
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; status={self.client.status()}\n{self.log.read_text()}")

    def wait_state(self, state: str, plugin: str = PLUGIN, timeout: float = 30.0) -> dict:
        def check():
            plugins = {p["id"]: p for p in self.client.status()["plugins"]}
            return plugins.get(plugin) if plugins.get(plugin, {}).get("state") == state else None

        return self.wait_for(check, timeout, f"{plugin} {state}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.track()
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.track()
            self.proc.kill()
            self.proc.wait()
        for pid in self.seen:
            for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
                try:
                    kill(pid)
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def start_host(tmp_path):
    """start_host(**kwargs) runs a host on tmp_path/home; every host and its processes die at teardown."""
    hosts: list[HostProcess] = []

    def start(env: dict | None = None, args: tuple = (), cli: bool = False) -> HostProcess:
        host = HostProcess(tmp_path / "home", tmp_path / "host.log", env, args, cli).start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.kill_all()
