"""Real plugins on the real runtime, through the CLI: what lbctl answers their host API calls, exit 9 when they
fail, and whose log a line is. One host runs the tests' four plugins (tests/plugins/) for the whole module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from lbctl import __version__
from lbctl.runtime.logs import NOISE
from test_runtime_support import FAULTY, HOSTAPI, PLUGIN, HostProcess, install

pytest.importorskip("langbot_plugin")
pytestmark = pytest.mark.runtime
BROKEN = "lbctl-tests/broken"
START_TIMEOUT = 8  # seconds the host gives a plugin to start before it reports it failed
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    install(root / "home", {"greeting": "hi", "count": 1, "mode": "a"})
    for plugin in (FAULTY, HOSTAPI, BROKEN):
        install(root / "home", {}, plugin=plugin)
    host = HostProcess(root / "home", root / "host.log", {"LBCTL_RUNTIME_START_TIMEOUT": str(START_TIMEOUT)})
    try:
        host.start()
        for plugin in (PLUGIN, FAULTY, HOSTAPI):
            host.wait_state("running", plugin, timeout=60)
        yield host
    finally:
        host.kill_all()


@pytest.fixture
def home(host):
    return host.home


def cli(home, *args):
    done = subprocess.run([sys.executable, "-m", "lbctl", *args], env={**os.environ, "LBCTL_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    doc = json.loads(done.stdout) if "--json" in args else None
    return done.returncode, doc, done.stdout, done.stderr


def test_a_tool_that_raises_is_the_plugins_failure(home):
    code, doc, _, _ = cli(home, "call-tool", FAULTY, "explode", "--args", '{"text": "boom"}', "--json")
    assert (code, doc["status"], doc["exit_code"]) == (9, "error", 9)
    assert doc["errors"] == [{"code": "plugin_failed", "message": f"{FAULTY} failed: ValueError: explode refuses 'boom'",
                              "hint": f"See `lbctl logs {FAULTY}`.", "plugin": FAULTY}]  # fmt: skip
    code, _, stdout, stderr = cli(home, "call-tool", FAULTY, "explode")
    assert (code, stdout) == (9, "")
    assert stderr.startswith(f"error: {FAULTY} failed: ValueError: explode refuses ''\n")


def test_a_command_that_raises_is_the_plugins_failure(home):
    code, doc, _, _ = cli(home, "run-command", FAULTY, "fail now", "--json")
    assert code == 9 and doc["errors"][0]["message"] == f"{FAULTY} failed: RuntimeError: fail now, as asked"
    assert doc["errors"][0]["plugin"] == FAULTY
    code, doc, _, _ = cli(home, "run-command", FAULTY, "fail nosuch", "--json")
    assert code == 9 and "no such subcommand" in doc["errors"][0]["hint"]


def test_host_api_calls_get_real_or_honestly_empty_answers(home):
    code, doc, _, _ = cli(home, "run-command", HOSTAPI, "version", "--json")
    assert (code, doc["data"]["result"]) == (0, [{"text": f"LangBot version: lbctl {__version__}"}])
    code, doc, _, _ = cli(home, "run-command", HOSTAPI, "models", "--json")
    assert doc["data"]["result"] == [{"text": "asking the host"}, {"text": "0 models: [] (asked=True)"}]

    code, doc, _, _ = cli(home, "call-tool", HOSTAPI, "report", "--json")
    report = doc["data"]["result"]
    assert {name: answer["ok"] for name, answer in report.items() if "ok" in answer} == {
        "get_langbot_version": f"lbctl {__version__}", "get_llm_models": [], "get_bots": [],
        "list_knowledge_bases": [], "list_parsers": [], "vector_search": [], "list_boxes": []}
    refused = {name: answer["error"] for name, answer in report.items() if "error" in answer}
    assert sorted(refused) == ["get_bot_info", "invoke_embedding", "invoke_llm", "retrieve_knowledge", "send_message"]
    assert refused["invoke_llm"].endswith("LookupError: no LLM model 'no-such-model': lbctl runs plugins without "
                                          "LangBot and has none")


def test_logs_hold_only_lines_that_provably_belong_to_the_plugin(home):
    assert cli(home, "call-tool", PLUGIN, "echo_tool", "--args", '{"text": "mine"}')[0] == 0
    assert cli(home, "call-tool", FAULTY, "explode", "--args", '{"text": "theirs"}')[0] == 9
    logs = {plugin: cli(home, "logs", plugin, "-n", "1000", "--json")[1]["data"]["lines"]
            for plugin in (PLUGIN, FAULTY, HOSTAPI, BROKEN)}
    for plugin, lines in logs.items():
        assert lines and {line["plugin"] for line in lines} == {plugin}
    texts = {plugin: "\n".join(line["text"] for line in lines) for plugin, lines in logs.items()}
    assert "hello echo_tool called with 'mine'" in texts[PLUGIN] and "explode" not in texts[PLUGIN]
    assert "faulty explode called with {'text': 'theirs'}" in texts[FAULTY] and "echo_tool" not in texts[FAULTY]
    assert "hostapi initialize() called, host version lbctl" in texts[HOSTAPI]
    assert "RuntimeError: broken refuses to start" in texts[BROKEN]  # its traceback, from its own worker
    assert all("broken" not in texts[plugin] for plugin in (PLUGIN, FAULTY, HOSTAPI))

    host_log = cli(home, "logs", "--host", "-n", "2000", "--json")[1]["data"]["lines"]
    assert {line["plugin"] for line in host_log} == {PLUGIN, FAULTY, HOSTAPI, BROKEN, None}
    assert all(ISO_UTC.fullmatch(line["ts"]) for line in host_log)
    _, _, table, _ = cli(home, "logs", PLUGIN, "-n", "3")
    assert [ISO_UTC.fullmatch(line.split()[0]) is not None for line in table.splitlines()] == [True] * 3
    assert cli(home, "logs", PLUGIN, "--host")[0] == 2 and cli(home, "logs")[0] == 2


def test_restart_noise_is_explained_not_an_error(home):
    assert cli(home, "restart", PLUGIN)[0] == 0
    host_log = cli(home, "logs", "--host", "-n", "2000", "--json")[1]["data"]["lines"]
    closed = [line for line in host_log if line["text"].startswith("Error receiving message:")]
    explained = {f"{text} ({why})" for text, why in NOISE.items()}
    assert closed and all(line["level"] == "INFO" and line["text"] in explained for line in closed)
    assert any(line["plugin"] == PLUGIN and "标准输出流已关闭。" in line["text"] for line in closed)


def test_a_plugin_that_does_not_start_is_reported_and_restart_exits_9(host, home):
    broken = host.wait_state("failed", BROKEN, timeout=40)
    assert broken["error"] == f"did not start within {START_TIMEOUT} s: RuntimeError: broken refuses to start"
    code, doc, _, _ = cli(home, "restart", BROKEN, "--json")
    assert code == 9 and doc["data"]["plugins"][0]["state"] == "failed"
    assert doc["errors"] == [{"code": "plugin_failed", "plugin": BROKEN, "hint": f"See `lbctl logs {BROKEN}`.",
                              "message": f"{BROKEN}: did not start within {START_TIMEOUT} s: "
                                         "RuntimeError: broken refuses to start"}]  # fmt: skip
