"""examples/langbot-compose: the one-shot lbctl service's exact command, run against the suite's real LangBot,
leaves the plugins installed and configured; a second run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from pkgfactory import make_lbpkg

pytestmark = pytest.mark.langbot

COMPOSE = REPO / "examples" / "langbot-compose" / "compose.yaml"


def service(name: str) -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"][name]


def command(url: str) -> list[str]:
    """The lbctl service's command, with the compose network's LangBot and the image's files mapped here."""
    argv = service("lbctl")["command"]
    assert argv[0] == "lbctl"
    mapping = {"http://langbot:5300": url, "/etc/lbctl": str(REPO / "examples")}
    mapped = []
    for arg in argv[1:]:
        for old, new in mapping.items():
            arg = arg.replace(old, new)
        mapped.append(arg)
    return [str(Path(sys.executable).parent / "lbctl"), *mapped]


def test_the_compose_files_wire_lbctl_to_langbot_and_the_wheelhouse():
    lbctl, runtime, langbot = service("lbctl"), service("langbot_plugin_runtime"), service("langbot")
    assert lbctl["environment"]["LBCTL_API_KEY"] == "${LANGBOT_API_KEY}"
    assert langbot["environment"]["API__GLOBAL_API_KEY"].startswith("${LANGBOT_API_KEY")
    assert "--wait-ready" in lbctl["command"] and "sync" in lbctl["command"]
    assert not any("key" in arg.lower() for arg in lbctl["command"])  # never a secret in argv
    assert runtime["environment"]["LANGBOT_PLUGIN_PYPI_INDEX_URL"] == "http://wheelhouse:8080/simple/"
    assert any(v.endswith(":/app/data/plugin-runtime") for v in runtime["volumes"])
    assert service("wheelhouse")["command"][:3] == ["lbctl", "index", "serve"]


def test_the_lbctl_service_provisions_langbot_and_a_second_run_changes_nothing(langbot_server, tmp_path):
    server, market = langbot_server
    market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0"))
    env = {**os.environ, "LBCTL_API_KEY": server.api_key, "LBCTL_HOME": str(tmp_path / "home"),
           "LBCTL_CACHE_DIR": str(tmp_path / "cache"), "LBCTL_CONFIG": str(tmp_path / "config.toml")}
    argv = command(server.url)
    try:
        first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        assert {"langbot-team/GoogleSearch", "lbctl-examples/dice"} <= set(server.plugin_ids())
        assert server.api("/plugins/lbctl-examples/dice/config")["data"]["config"] == {"sides": 20}
        tasks = server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"]

        second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr
        assert second.stdout == "" and "Nothing to do on " in second.stderr
        assert server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"] == tasks
    finally:
        server.remove_all_plugins()
