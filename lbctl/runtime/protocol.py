"""The Plugin Runtime control protocol: transports, seq_id RPC in both directions, streams, file chunks.

See docs/runtime-control-protocol.md §2-§5. Nothing here knows about the environment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Final

log = logging.getLogger(__name__)

STDIO_CHUNK: Final = 16 * 1024
FILE_CHUNK: Final = 16 * 1024
MAX_MESSAGE: Final = 16 * 1024 * 1024
TOKEN_HEADER: Final = "X-LangBot-Plugin-Runtime-Token"
DEFAULT_TIMEOUT: Final = 30.0

Handler = Callable[[str, dict, "dict | None"], Awaitable[dict]]


class ConnectionLost(Exception):
    """The transport closed; every pending call fails with this."""


class ActionFailed(Exception):
    """The peer answered code 1; the message is the peer's "<Class>: <text>"."""


class HostAPIError(Exception):
    """Raised by a handler to answer code 1 with this exact message."""


RELAYED: Final = "ActionCallError: "


def relayed_error(message: str) -> str | None:
    """The error a peer behind the runtime answered, for a message the runtime relayed, else None.

    The runtime wraps what a plugin answers in one `ActionCallError: ` per hop (plugin → runtime → host), so a
    tool that raises ValueError arrives as "ActionCallError: ValueError: …"; the runtime's own refusals do not.
    """
    if not message.startswith(RELAYED):
        return None
    while message.startswith(RELAYED):
        message = message[len(RELAYED) :]
    return message


def split_utf8(text: str, size: int) -> list[str]:
    """Pieces of at most `size` UTF-8 bytes, never cutting a character."""
    pieces, current, length = [], [], 0
    for char in text:
        width = len(char.encode())
        if length + width > size:
            pieces.append("".join(current))
            current, length = [], 0
        current.append(char)
        length += width
    pieces.append("".join(current))
    return pieces


def _loads(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class StdioTransport:
    """One JSON object per line; messages over 16 KiB go as chunk_start / chunk_data / chunk_end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer
        self._lock = asyncio.Lock()

    async def send(self, text: str) -> None:
        raw = text.encode()
        lines = [raw] if len(raw) <= STDIO_CHUNK else self._chunked(text, len(raw))
        async with self._lock:
            try:
                for line in lines:
                    self._writer.write(line + b"\n")
                    await self._writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ConnectionLost(str(exc)) from None

    @staticmethod
    def _chunked(text: str, total: int) -> list[bytes]:
        lines, offset = [json.dumps({"type": "chunk_start", "total_size": total}).encode()], 0
        for piece in split_utf8(text, STDIO_CHUNK):
            lines.append(json.dumps({"type": "chunk_data", "data": piece, "offset": offset}).encode())
            offset += len(piece.encode())
        return lines + [b'{"type": "chunk_end"}']

    async def receive(self) -> str:
        while True:
            line = await self._line()
            if not (line.startswith("{") and line.endswith("}")):
                continue
            header = _loads(line) if len(line) < 200 else {}
            if header.get("type") == "chunk_start":
                return await self._assemble(header.get("total_size", -1))
            return line

    async def _line(self) -> str:
        try:
            raw = await self._reader.readline()
        except (ValueError, ConnectionError) as exc:
            raise ConnectionLost(str(exc)) from None
        if not raw:
            raise ConnectionLost("the runtime closed its output")
        return raw.decode(errors="replace").strip()

    async def _assemble(self, total: int) -> str:
        if not 0 <= total <= MAX_MESSAGE:
            raise ConnectionLost("invalid chunked message size")
        parts, size = [], 0
        while True:
            piece = _loads(await self._line())
            if piece.get("type") == "chunk_end":
                return "".join(parts)
            if piece.get("type") == "chunk_data" and piece.get("offset") == size:
                parts.append(piece.get("data", ""))
                size += len(parts[-1].encode())
            if size > total:
                raise ConnectionLost("chunked message longer than announced")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


class WebSocketTransport:
    """One JSON object per WebSocket message (the library reassembles fragments)."""

    def __init__(self, ws: Any):
        self._ws = ws

    @classmethod
    async def connect(cls, url: str, token: str | None) -> WebSocketTransport:
        from websockets.asyncio.client import connect

        headers = {TOKEN_HEADER: token} if token else {}
        ws = await connect(url, additional_headers=headers, max_size=MAX_MESSAGE, open_timeout=10, proxy=None)
        return cls(ws)

    async def send(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from None

    async def receive(self) -> str:
        from websockets.exceptions import ConnectionClosed

        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from None
        return message if isinstance(message, str) else message.decode()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


class Peer:
    """seq_id RPC over a transport: our calls and streams out, the runtime's requests in (to `handler`)."""

    def __init__(self, transport: Any, handler: Handler):
        self.transport = transport
        self.handler = handler
        self.files: dict[str, bytes] = {}
        self._partial: dict[str, list[bytes]] = {}
        self._seq = itertools.count(1)
        self._pending: dict[int, asyncio.Queue] = {}
        self._serving: dict[int, asyncio.Task] = {}
        self._closed: BaseException | None = None

    async def run(self) -> None:
        """Read until the transport closes; then fail every pending call."""
        try:
            while True:
                self._dispatch(await self.transport.receive())
        except ConnectionLost as exc:
            self._closed = exc
        finally:
            self._closed = self._closed or ConnectionLost("connection closed")
            for queue in self._pending.values():
                queue.put_nowait(None)
            for task in self._serving.values():
                task.cancel()

    def _dispatch(self, line: str) -> None:
        message = _loads(line)
        if "code" in message:
            queue = self._pending.get(message.get("seq_id"))
            if queue is not None:
                queue.put_nowait(message)
        elif "action" in message:
            task = asyncio.create_task(self._serve(message))
            self._serving[message.get("seq_id")] = task
            task.add_done_callback(lambda _t, s=message.get("seq_id"): self._serving.pop(s, None))

    async def _serve(self, request: dict) -> None:
        seq, action = request.get("seq_id"), request.get("action", "")
        try:
            data = await self._builtin(action, request.get("data") or {}, request.get("context"))
            reply = {"seq_id": seq, "code": 0, "message": "success", "data": data}
        except HostAPIError as exc:
            reply = {"seq_id": seq, "code": 1, "message": str(exc), "data": {}}
        except Exception as exc:  # a bug in a handler must still answer, or the plugin waits its full timeout
            log.exception("handler for %s failed", action)
            reply = {"seq_id": seq, "code": 1, "message": f"{type(exc).__name__}: {exc}"[:4096], "data": {}}
        with contextlib.suppress(ConnectionLost):
            await self.transport.send(json.dumps(reply))

    async def _builtin(self, action: str, data: dict, context: dict | None) -> dict:
        if action == "__ping":
            return {"pong": "pong"}
        if action == "__file_chunk":
            return self._receive_chunk(data)
        if action == "__cancel_action":
            task = self._serving.get(data.get("seq_id"))
            return {"cancelled": bool(task and task.cancel())}
        if action == "__stream_ack":
            return {"accepted": True}
        return await self.handler(action, data, context)

    def _receive_chunk(self, data: dict) -> dict:
        key, index, amount = data.get("file_key", ""), data.get("chunk_index"), data.get("chunk_amount")
        parts = self._partial.setdefault(key, [])
        if index != len(parts) or not isinstance(amount, int) or amount <= 0:
            self._partial.pop(key, None)
            raise HostAPIError(f"ValueError: file chunk {index} of {key!r} is out of order")
        parts.append(base64.b64decode(data.get("chunk_base64", ""), validate=True))
        if index + 1 == amount:
            self.files[key] = b"".join(self._partial.pop(key))
        return {}

    async def _request(self, action: str, data: dict, context: dict | None, flow: bool = False) -> tuple[int, asyncio.Queue]:
        if self._closed:
            raise ConnectionLost(str(self._closed))
        seq = next(self._seq)
        queue: asyncio.Queue = asyncio.Queue()
        self._pending[seq] = queue
        message: dict = {"seq_id": seq, "action": action, "data": data}
        if context is not None:
            message["context"] = context
        if flow:
            message["stream_flow_control"] = 1
        try:
            await self.transport.send(json.dumps(message))
        except BaseException:
            self._pending.pop(seq, None)
            raise
        return seq, queue

    async def _next(self, seq: int, queue: asyncio.Queue, timeout: float) -> dict:
        try:
            reply = await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            await self._cancel(seq)
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        if reply is None:
            raise ConnectionLost(str(self._closed))
        if reply.get("code") != 0:
            raise ActionFailed(str(reply.get("message") or "error without a message"))
        return reply

    async def _cancel(self, seq: int) -> None:
        with contextlib.suppress(Exception):
            await self._request("__cancel_action", {"seq_id": seq}, None)

    async def call(self, action: str, data: dict, context: dict | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """One request, one answer; returns its `data` or raises ActionFailed / ConnectionLost / TimeoutError."""
        seq, queue = await self._request(action, data, context)
        try:
            return (await self._next(seq, queue, timeout)).get("data") or {}
        finally:
            self._pending.pop(seq, None)

    async def stream(
        self, action: str, data: dict, context: dict | None = None, *, frame_timeout: float = 300.0
    ) -> AsyncIterator[dict]:
        """Frames of a generator action, acknowledged as they come (§4.2)."""
        seq, queue = await self._request(action, data, context, flow=True)
        try:
            while True:
                # An error ends the stream with one code=1 frame and no "end" frame;
                # _next raises on it, so both terminators stop the loop.
                reply = await self._next(seq, queue, frame_timeout)
                if reply.get("chunk_status") == "end":
                    return
                await self._ack(seq, reply.get("stream_index"), context)
                yield reply.get("data") or {}
        finally:
            self._pending.pop(seq, None)

    async def _ack(self, seq: int, index: Any, context: dict | None) -> None:
        if isinstance(index, int) and index % 4 == 0:
            await self.call("__stream_ack", {"seq_id": seq, "index": index}, context)

    async def upload(self, payload: bytes, context: dict, extension: str = ".lbpkg") -> str:
        """Send a file with __file_chunk under `context` (the consuming request must use the same one)."""
        key = f"ft1_{uuid.uuid4().hex}{uuid.uuid4().hex}{extension}"
        pieces = [payload[i : i + FILE_CHUNK] for i in range(0, len(payload), FILE_CHUNK)] or [b""]
        for index, piece in enumerate(pieces):
            chunk = {
                "file_key": key,
                "file_length": len(payload),
                "chunk_base64": base64.b64encode(piece).decode(),
                "chunk_index": index,
                "chunk_amount": len(pieces),
                "chunk_size": len(piece),
            }
            await self.call("__file_chunk", chunk, context)
        return key
