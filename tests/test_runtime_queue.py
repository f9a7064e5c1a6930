"""The real runtime starts plugins one at a time (its worker policy, max_concurrent_restarts=1): a plugin waits
for those before it. The host counts a plugin's start time from its turn, so a long queue is no failure; a
plugin that cannot start is still reported failed, with its reason (issue 17 §2)."""

from __future__ import annotations

import re

import pytest
from pkgfactory import make_lbpkg

from test_runtime_support import start_host  # noqa: F401

pytest.importorskip("langbot_plugin")
pytestmark = pytest.mark.runtime
# Each plugin below takes 3-4 s to start (5-8 s on a loaded machine), well within its own 12 s; seven of them
# queue for 21-28 s, so the later ones wait longer than 12 s for their turn.
START_TIMEOUT = 12
SLOW = [f"lbctl-tests/slow{i}" for i in range(7)]
BROKEN = "lbctl-tests/zbroken"  # sorted last: it is applied after every slow plugin
MAIN = '''\
import asyncio

from langbot_plugin.api.definition.plugin import BasePlugin


class Hello(BasePlugin):
    async def initialize(self) -> None:
        if {broken}:
            raise RuntimeError("zbroken refuses to start")
        await asyncio.sleep(2.5)
'''
STATE = re.compile(r"^(?:__main__|lbctl\.runtime\.host): (lbctl-tests/\S+): (\w+)", re.M)  # the host's -v lines


def package(tmp_path, plugin: str, *, broken: bool = False):
    author, name = plugin.split("/")
    path = tmp_path / f"{author}-{name}-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg(author, name, "0.1.0", config=[],
                                extra_files={"main.py": MAIN.format(broken=broken)}))
    return path


def test_plugins_waiting_for_their_turn_are_starting_not_failed(lbctl, tmp_path, start_host):  # noqa: F811
    packages = [package(tmp_path, plugin) for plugin in SLOW] + [package(tmp_path, BROKEN, broken=True)]
    assert lbctl("install", *packages).exit_code == 0

    host = start_host(env={"LBCTL_RUNTIME_START_TIMEOUT": str(START_TIMEOUT)})
    for plugin in SLOW:
        host.wait_state("running", plugin, timeout=180)
    broken = host.wait_state("failed", BROKEN, timeout=90)

    states = STATE.findall(host.log.read_text())
    assert [plugin for plugin, state in states if state == "failed"] == [BROKEN], states
    assert broken["error"] == f"did not start within {START_TIMEOUT} s: RuntimeError: zbroken refuses to start"
    assert host.stop() == 0
