"""Unit tests of the host's log attribution, its answers to host APIs and the reading of relayed errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from lbctl.runtime import hostapis
from lbctl.runtime.callbacks import Callbacks, chain_text
from lbctl.runtime.hostfile import HostFile
from lbctl.runtime.logs import NOISE, LineReader, StderrChannel
from lbctl.runtime.protocol import HostAPIError, relayed_error
from lbctl.runtime.storage import Storage
from lbctl.state import Environment

HELLO, OTHER = "lbctl-tests/hello", "lbctl-tests/hello2"
INSTALLATIONS = {HELLO: {"uuid": "u-hello", "digest": "a" * 64}, OTHER: {"uuid": "u-other", "digest": "b" * 64}}
WORKERS = {101: "a" * 64, 202: "b" * 64}  # pid -> the artifact it runs from
RUNTIME = 7


def sdk(level: str, text: str, origin: str = "mgr.py (12)") -> bytes:
    return f"[12-01 10:00:00.000] {origin} - [{level}] : {text}\n".encode()


def reader(workers: dict = WORKERS) -> LineReader:
    return LineReader(lambda: INSTALLATIONS, workers.get)


def test_stderr_channel_tells_which_process_wrote_each_chunk():
    code = "import os, sys\nfor i in range(50):\n    sys.stderr.write(f'{os.getpid()} {i}\\n')\n"

    async def run() -> list[tuple[int, bytes]]:
        channel, chunks = StderrChannel(), []
        children = [subprocess.Popen([sys.executable, "-u", "-c", code], stderr=channel.child_end()) for _ in range(3)]
        channel.spawned()
        await asyncio.wait_for(channel.read(lambda pid, data: chunks.append((pid, data))), 20)
        return [(child.wait(), child.pid) for child in children], chunks

    children, chunks = asyncio.run(run())
    assert {pid for _, pid in children} == {pid for pid, _ in chunks}
    for pid, data in chunks:
        assert {int(line.split()[0]) for line in data.decode().splitlines()} == {pid}


def test_a_worker_line_belongs_to_its_plugin_and_a_runtime_line_only_when_it_names_one():
    lines = reader()
    [mine] = lines.feed(101, sdk("WARNING", "whatever the plugin says", "main.py (3)"))
    assert (mine["plugin"], mine["level"], mine["origin"], mine["text"]) == (HELLO, "WARNING", "main.py:3",
                                                                             "whatever the plugin says")
    [stray] = lines.feed(RUNTIME, sdk("INFO", "housekeeping after that"))
    named = lines.feed(RUNTIME, sdk("INFO", f"launching {OTHER}") + sdk("WARNING", "restarting u-hello in 3s"))
    assert [stray["plugin"], *[line["plugin"] for line in named]] == [None, OTHER, HELLO]
    assert lines.feed(RUNTIME, sdk("INFO", f"{HELLO}2x is someone else"))[0]["plugin"] is None


def test_a_crashed_workers_last_lines_still_belong_to_it():
    workers = dict(WORKERS)
    lines = reader(workers)
    assert lines.feed(101, sdk("INFO", "started"))[0]["plugin"] == HELLO
    del workers[101]  # the process is gone by the time its traceback is read
    tail = lines.feed(101, b"Traceback (most recent call last):\n  File \"x.py\"\nRuntimeError: boom\n")
    assert [(line["plugin"], line["level"]) for line in tail] == [(HELLO, "INFO"), (HELLO, "INFO"), (HELLO, "ERROR")]


def test_lines_split_across_reads_are_joined_per_writer():
    lines = reader()
    assert lines.feed(101, b"[12-01 10:00:00.000] main.py (1) - [INFO] : he") == []
    assert lines.feed(202, b"other\n")[0]["text"] == "other"
    assert [line["text"] for line in lines.feed(101, b"llo\nand more")] == ["hello"]
    assert [(line["plugin"], line["text"]) for line in lines.flush()] == [(HELLO, "and more")]


def test_shutdown_noise_is_kept_at_info_with_its_meaning():
    [line] = reader().feed(RUNTIME, sdk("ERROR", "Error receiving message: 标准输出流已关闭。", "stdio.py (279)"))
    assert line["level"] == "INFO"
    assert line["text"] == f"Error receiving message: 标准输出流已关闭。 ({NOISE['Error receiving message: 标准输出流已关闭。']})"


def test_relayed_errors_are_the_plugins_own():
    assert relayed_error("ActionCallError: ActionCallError: ValueError: no") == "ValueError: no"
    assert relayed_error("ValueError: Plugin a/b not found") is None


def forwarded_actions() -> list[str]:
    """Every plugin API the runtime forwards to its host (runtime/io/handlers/plugin.py)."""
    try:
        from langbot_plugin.entities.io.actions.enums import PluginToRuntimeAction
    except ImportError:  # without the runtime extra there is nothing to forward
        return []

    answered_by_the_runtime = {"register_plugin", "list_plugins_manifest", "list_commands", "list_tools"}
    storage = {a.value for a in PluginToRuntimeAction if a.value.endswith(("_storage", "_storage_keys"))}
    return sorted(a.value for a in PluginToRuntimeAction if a.value not in answered_by_the_runtime | storage)


@pytest.mark.parametrize("action", forwarded_actions())
def test_every_host_api_the_runtime_forwards_gets_a_real_answer(action, tmp_path):
    callbacks = Callbacks(Environment(tmp_path), HostFile(tmp_path / "host.json"), Storage(tmp_path / "s.db"))
    try:
        answer = asyncio.run(callbacks.handle(action, {}, {}))
    except HostAPIError as exc:
        assert not str(exc).startswith("NotImplementedError"), exc
        assert str(exc).split(": ")[0] in ("LookupError", "PermissionError"), exc
    else:
        assert isinstance(answer, dict)


def test_lists_are_honestly_empty_and_ids_unknown():
    assert hostapis.answer("get_llm_models", {}) == {"llm_models": []}
    assert hostapis.answer("get_langbot_version", {})["version"].startswith("lbctl ")
    with pytest.raises(HostAPIError, match="^LookupError: no bot 'b1': lbctl runs plugins without LangBot"):
        hostapis.answer("send_message", {"bot_uuid": "b1"})
    with pytest.raises(HostAPIError, match="^NotImplementedError: host API 'future_api'"):
        hostapis.answer("future_api", {})


def test_message_chains_read_as_text():
    chain = [{"type": "Plain", "text": "hi "}, {"type": "At", "target": "1"}, {"type": "Plain", "text": "!"}]
    assert chain_text(chain) == "hi [At]!"
