"""examples/langbot-compose: the one-shot lbctl service's exact command, run against the suite's real LangBot,
leaves the plugins installed and configured; a second run changes nothing, and neither does a run against a
LangBot whose runtime has just restarted (what taking the compose project down and up again, or recreating a
container, does: LangBot lists `[]`, then one plugin after another, until its runtime has them back).
tests/test_containers.py runs the same recipe in a real container engine."""

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
    # Item 5 of issue 18: no Box runtime here, and LangBot's marketplace is the one the image was built from.
    assert langbot["environment"]["BOX__ENABLED"] == "false"
    args = yaml.safe_load(COMPOSE.read_text())["x-lbctl-image"]["build"]["args"]
    marketplace = "${MARKETPLACE_URL:-https://space.langbot.app}"
    assert langbot["environment"]["SPACE__URL"] == args["LBCTL_INDEX_URL"] == marketplace
    assert args["LANGBOT_PYTHON"] == "${LANGBOT_PYTHON:-3.12}"  # LangBot 4.11.2's image is python:3.12.7-slim
    assert args["PIP_INDEX_URL"].startswith("${PIP_INDEX_URL")


def test_the_recipes_take_their_sources_and_the_plugins_python_as_build_arguments():
    """A mirror is one build argument (spec §9); the compose image resolves wheels for LangBot's Python."""
    for dockerfile in ("docker/Dockerfile", "langbot-compose/lbctl.Dockerfile", "kubernetes/Dockerfile"):
        text = (REPO / "examples" / dockerfile).read_text()
        assert "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}" in text, dockerfile
        pip_arg = text.index("ARG PIP_INDEX_URL=https://pypi.org/simple")
        assert pip_arg < text.index("RUN pip install"), dockerfile  # lbctl itself comes from the mirror too
        if "lbctl download" in text:
            assert text.index("ARG LBCTL_INDEX_URL=https://space.langbot.app") < text.index("RUN lbctl download")
    compose_image = (REPO / "examples" / "langbot-compose" / "lbctl.Dockerfile").read_text()
    assert "ARG LANGBOT_PYTHON=3.12" in compose_image and '--python-version "$LANGBOT_PYTHON"' in compose_image


def _env(server, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LBCTL_API_KEY": server.api_key, "LBCTL_HOME": str(tmp_path / "home"),
            "LBCTL_CACHE_DIR": str(tmp_path / "cache"), "LBCTL_CONFIG": str(tmp_path / "config.toml")}


def test_the_lbctl_service_provisions_langbot_and_a_second_run_changes_nothing(langbot_server, tmp_path):
    server, market = langbot_server
    market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0"))
    env = _env(server, tmp_path)
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


def test_after_a_runtime_restart_the_lbctl_service_waits_for_the_plugins_and_changes_nothing(langbot_server, tmp_path):
    server, market = langbot_server
    market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0"))
    argv, env = command(server.url), _env(server, tmp_path)
    try:
        first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        tasks = server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"]
        seen = len(market.requests)

        server.stop_runtime()  # a recreated runtime container: LangBot reconnects and restores its plugins
        server.start_runtime()
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)

        assert again.returncode == 0, again.stderr
        assert again.stdout == "" and "Nothing to do on " in again.stderr
        assert server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"] == tasks
        assert market.requests[seen:] == []  # nothing downloaded again, by lbctl or by LangBot
        assert {"langbot-team/GoogleSearch", "lbctl-examples/dice"} <= set(server.plugin_ids())
    finally:
        server.remove_all_plugins()
