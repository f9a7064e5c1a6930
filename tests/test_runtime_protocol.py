"""Unit tests of the control-protocol layer, the storage and the socket client (no runtime process)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

from lbctl.errors import NoHostError, NotInstalledError
from lbctl.runtime.client import HostClient, short_address, socket_path
from lbctl.runtime.protocol import (
    ActionFailed,
    ConnectionLost,
    HostAPIError,
    Peer,
    StdioTransport,
    split_utf8,
)
from lbctl.runtime.storage import Storage, StorageKeyMissing


class MemoryTransport:
    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.other: MemoryTransport | None = None
        self.sent: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.other.inbox.put_nowait(text)

    async def receive(self) -> str:
        text = await self.inbox.get()
        if text is None:
            raise ConnectionLost("closed")
        return text

    async def close(self) -> None:
        self.inbox.put_nowait(None)


def pair(left_handler, right_handler) -> tuple[Peer, Peer]:
    a, b = MemoryTransport(), MemoryTransport()
    a.other, b.other = b, a
    return Peer(a, left_handler), Peer(b, right_handler)


async def nothing(action, data, context):
    raise HostAPIError(f"NotImplementedError: {action}")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_split_utf8_never_cuts_a_character():
    text = "a" * 5 + "é" * 10 + "漢" * 7
    pieces = split_utf8(text, 8)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 8 for p in pieces)


async def stdio_pair():
    left, right = socket.socketpair()
    reader_a, writer_a = await asyncio.open_unix_connection(sock=left, limit=4 * 1024 * 1024)
    reader_b, writer_b = await asyncio.open_unix_connection(sock=right, limit=4 * 1024 * 1024)
    return (reader_a, writer_a), (reader_b, writer_b)


def test_stdio_chunking_interoperates_with_the_runtime_connection():
    from langbot_plugin.runtime.io.connections.stdio import StdioConnection

    message = json.dumps({"seq_id": 1, "action": "x", "data": {"text": "漢字é" * 20000}}, ensure_ascii=False)

    async def scenario():
        (ra, wa), (rb, wb) = await stdio_pair()
        ours, theirs = StdioTransport(ra, wa), StdioConnection(rb, wb)
        await ours.send(message)
        assert await theirs.receive() == message
        await theirs.send(message)
        assert await ours.receive() == message
        await ours.send('{"small": 1}')
        assert await theirs.receive() == '{"small": 1}'

    run(scenario())


def test_rpc_both_directions_and_errors():
    async def host(action, data, context):
        if action == "echo":
            return {"got": data, "context": context}
        raise HostAPIError(f"NotImplementedError: host API '{action}' is not provided by lbctl")

    async def scenario():
        ours, theirs = pair(host, nothing)
        tasks = [asyncio.create_task(ours.run()), asyncio.create_task(theirs.run())]
        assert await theirs.call("echo", {"a": 1}, {"ctx": 2}) == {"got": {"a": 1}, "context": {"ctx": 2}}
        assert await theirs.call("__ping", {}) == {"pong": "pong"}
        with pytest.raises(ActionFailed, match="host API 'invoke_llm' is not provided"):
            await theirs.call("invoke_llm", {})
        with pytest.raises(ActionFailed, match="NotImplementedError: anything"):
            await ours.call("anything", {})
        await ours.transport.close()
        await asyncio.gather(*tasks[:1])
        with pytest.raises(ConnectionLost):
            await ours.call("echo", {})

    run(scenario())


def test_streams_end_and_error_frames_and_flow_control_acks():
    async def scenario():
        async def runtime(action, data, context):
            await asyncio.Event().wait()  # the frames below answer instead

        ours, theirs = pair(nothing, runtime)
        tasks = [asyncio.create_task(ours.run()), asyncio.create_task(theirs.run())]

        async def frames(seq, count, end):
            for index in range(1, count + 1):
                frame = {"seq_id": seq, "code": 0, "message": "success", "data": {"i": index},
                         "chunk_status": "continue", "stream_index": index}  # fmt: skip
                await theirs.transport.send(json.dumps(frame))
            await theirs.transport.send(json.dumps({"seq_id": seq, **end}))

        end = {"code": 0, "message": "success", "data": {}, "chunk_status": "end"}
        stream = ours.stream("execute_command", {}, {"b": 1})
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)
        request = ours.transport.sent[-1]
        assert request["stream_flow_control"] == 1
        await frames(request["seq_id"], 5, end)
        assert [(await first)["i"]] + [f["i"] async for f in stream] == [1, 2, 3, 4, 5]
        assert [a for a in ours.transport.sent if a.get("action") == "__stream_ack"][0]["data"]["index"] == 4

        error = {"code": 1, "message": "RuntimeError: boom", "data": {}, "chunk_status": "continue"}
        stream = ours.stream("execute_command", {})
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)
        await frames(ours.transport.sent[-1]["seq_id"], 1, error)
        assert (await first)["i"] == 1
        with pytest.raises(ActionFailed, match="boom"):
            await anext(stream)
        for task in tasks:
            task.cancel()

    run(scenario())


def test_file_chunks_both_ways_and_cancel_on_timeout():
    payload = bytes(range(256)) * 170  # 43 520 bytes: three chunks

    async def slow(action, data, context):
        await asyncio.sleep(30)

    async def scenario():
        ours, theirs = pair(slow, nothing)
        tasks = [asyncio.create_task(ours.run()), asyncio.create_task(theirs.run())]
        key = await ours.upload(payload, {"binding": 1})
        assert theirs.files[key] == payload
        chunks = [m for m in ours.transport.sent if m.get("action") == "__file_chunk"]
        assert [c["data"]["chunk_index"] for c in chunks] == [0, 1, 2]
        assert all(c["context"] == {"binding": 1} for c in chunks)
        back = await theirs.upload(b"icon", {})
        assert ours.files[back] == b"icon"

        with pytest.raises(TimeoutError):
            await theirs.call("slow_action", {}, timeout=0.2)
        await asyncio.sleep(0.1)
        cancel = [m for m in theirs.transport.sent if m.get("action") == "__cancel_action"]
        assert cancel and not ours._serving
        for task in tasks:
            task.cancel()

    run(scenario())


def test_storage(tmp_path):
    storage = Storage(tmp_path / "storage.db")
    storage.set("plugin", "a/b", "k", b"\x00v")
    storage.set("plugin", "a/c", "k", b"other")
    assert storage.get("plugin", "a/b", "k") == b"\x00v"
    assert storage.keys("plugin", "a/b") == ["k"]
    storage.delete("plugin", "a/b", "k")
    with pytest.raises(StorageKeyMissing):
        storage.get("plugin", "a/b", "k")
    with pytest.raises(ValueError):
        storage.set("plugin", "a/b", "big", b"x" * (10 * 1024 * 1024 + 1))
    assert (tmp_path / "storage.db").stat().st_mode & 0o777 == 0o600


def test_client_without_host(tmp_path):
    client = HostClient(tmp_path)
    assert client.is_up() is False
    assert client.status() == {"host": False, "runtime_version": None, "plugins": []}
    with pytest.raises(NoHostError) as error:
        client.tools()
    assert error.value.exit_code == 6 and "lbctl runtime serve" in error.value.hint


def test_client_reaches_a_socket_on_a_long_path(tmp_path):
    home = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path(home)
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    with short_address(path) as address:
        server.bind(address)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        request = json.loads(conn.makefile("rb").readline())
        error = {"code": "not_installed", "message": f"{request['id']} is not installed", "hint": None, "plugin": None}
        conn.sendall(json.dumps({"ok": False, "error": error}).encode() + b"\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    with pytest.raises(NotInstalledError, match="a/b is not installed"):
        HostClient(home).logs("a/b")
    thread.join()
    server.close()
