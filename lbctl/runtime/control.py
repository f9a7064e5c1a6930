"""The host's side of HOME/runtime/host.sock: one JSON-lines request per connection (see client.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import time
from collections import deque
from typing import Any, Final, Protocol

from lbctl.runtime.client import short_address, socket_path
from lbctl.runtime.protocol import ActionFailed, ConnectionLost, Peer, relayed_error

log = logging.getLogger(__name__)

SETTLED: Final = frozenset({"running", "failed", "disabled", "removed"})
# Errors the runtime makes of a plugin's: it timed out, or its worker went away during the call.
PLUGIN_ERRORS: Final = ("ActionCallTimeoutError: ", "ConnectionClosedError: ")
# What langbot-plugin 0.7.18 raises for a missing subcommand (its CommandNotFoundError is no exception).
NO_SUBCOMMAND: Final = "TypeError: exceptions must derive from BaseException"


class Live(Protocol):
    """One plugin's live state as the host keeps it."""

    state: str
    error: str | None


class Host(Protocol):
    """What the socket's side needs of the host that owns it (lbctl.runtime.host.Host): the host imports this
    module, never the other way round."""

    env: Any
    live: dict[str, Any]
    applied: dict[str, dict]
    peer: Peer | None
    callbacks: Any
    stopping: asyncio.Event
    runtime_version: str | None
    runtime_log: Any
    _child: Any

    async def reconcile(self, *, restart: str | None = None) -> None: ...


class OpError(Exception):
    """A socket request that fails; becomes `{"ok": false, "error": {...}}`."""

    def __init__(self, code: str, message: str, *, hint: str | None = None, plugin: str | None = None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "hint": hint, "plugin": plugin}


class Control:
    """Serves the CLI's requests (status, logs, follow, restart, tools, commands, ...) from the host's state."""

    def __init__(self, host: Host):
        self.host = host
        self.path = socket_path(host.env.home)
        self._server: asyncio.AbstractServer | None = None
        self._followers: set[asyncio.Queue] = set()

    async def open(self) -> None:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            with short_address(self.path) as address:
                sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=1024 * 1024)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    def publish(self, entry: dict) -> None:
        """Pass a new log line to every `follow` request."""
        for queue in self._followers:
            queue.put_nowait(entry)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer):
                return
            request = json.loads(await asyncio.wait_for(reader.readline(), 10) or b"{}")
            request = request if isinstance(request, dict) else {}
            if request.get("op") == "follow":
                return await self._follow(request, writer)
            try:
                reply = {"ok": True, "data": await self._op(request)}
            except OpError as exc:
                reply = {"ok": False, "error": exc.error}
            writer.write(_line(reply))
            await writer.drain()
        except (ValueError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def _op(self, request: dict) -> Any:
        op = request.get("op")
        method = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if method is None:
            raise OpError("bad_request", f"unknown request {op!r}")
        try:
            return await method(request)
        except ConnectionLost:
            raise OpError("not_running", "the runtime restarted during the request; try again") from None
        except TimeoutError as exc:
            raise OpError("timeout", f"the runtime did not answer: {exc}") from None
        except ActionFailed as exc:
            raise OpError("runtime_error", str(exc), plugin=request.get("id")) from None
        except (OpError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: answer anyway, so the CLI does not wait for nothing
            log.exception("request %s failed", op)
            raise OpError("internal", f"the runtime host failed: {type(exc).__name__}: {exc}") from None

    # -- state and logs ------------------------------------------------------------------------------

    async def _op_status(self, request: dict) -> dict:
        live = sorted(self.host.live.items())
        plugins = [{"id": pid, "state": entry.state, "error": entry.error} for pid, entry in live]
        child = self.host._child  # noqa: SLF001 - the host owns its child; the port is only reported
        return {"host": True, "runtime_version": self.host.runtime_version, "plugins": plugins,
                "debug_port": child.port if child else None}

    async def _op_logs(self, request: dict) -> dict:
        lines = self._log_source(request.get("id"))
        return {"lines": list(lines)[-max(int(request.get("n") or 100), 0) :]}

    def _log_source(self, plugin_id: str | None) -> deque:
        if plugin_id is None:
            return self.host.runtime_log
        return self._live(plugin_id).logs

    async def _follow(self, request: dict, writer: asyncio.StreamWriter) -> None:
        plugin_id, queue = request.get("id"), asyncio.Queue()
        try:
            backlog = list(self._log_source(plugin_id))[-int(request.get("n") or 10) :]
        except OpError as exc:
            writer.write(_line({"ok": False, "error": exc.error}))
            return
        self._followers.add(queue)
        try:
            for entry in backlog:
                writer.write(_line({"line": entry}))
            while not self.host.stopping.is_set():
                entry = await queue.get()
                if plugin_id is None or entry["plugin"] == plugin_id:
                    writer.write(_line({"line": entry}))
                    await writer.drain()
        finally:
            self._followers.discard(queue)

    async def _op_reconcile(self, request: dict) -> dict:
        await self.host.reconcile()
        return {"states": await self._settle(request.get("ids") or [], float(request.get("timeout") or 60))}

    async def _op_restart(self, request: dict) -> dict:
        plugin_id = self._running_or_fail(request.get("id"), states=("running", "starting", "failed"))
        await self.host.reconcile(restart=plugin_id)
        settled = await self._settle([plugin_id], float(request.get("timeout") or 60))
        return {"id": plugin_id, **settled[plugin_id]}

    async def _settle(self, ids: list[str], timeout: float) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            states = {pid: self._state_of(pid) for pid in ids}
            if all(s["state"] in SETTLED for s in states.values()) or time.monotonic() >= deadline:
                return states
            await asyncio.sleep(0.02)

    def _state_of(self, plugin_id: str) -> dict:
        live = self.host.live.get(plugin_id)
        return {"state": live.state, "error": live.error} if live else {"state": "removed", "error": None}

    def _live(self, plugin_id: Any) -> Live:
        if plugin_id not in self.host.live:
            raise OpError("not_installed", f"{plugin_id} is not installed", plugin=plugin_id)
        return self.host.live[plugin_id]

    def _running_or_fail(self, plugin_id: Any, *, states: tuple[str, ...] = ("running",)) -> str:
        live = self._live(plugin_id)
        if live.state in states:
            return plugin_id
        hint = "See `lbctl runtime status` and `lbctl logs`."
        raise OpError("not_running", f"{plugin_id} is {live.state}", hint=hint, plugin=plugin_id)

    # -- the plugins' tools and commands ---------------------------------------------------------------

    def _targets(self, plugin_id: str | None) -> list[str]:
        if plugin_id is not None:
            return [self._running_or_fail(plugin_id)]
        return [pid for pid, live in sorted(self.host.live.items()) if live.state == "running"]

    def _connection(self, plugin_id: str) -> tuple[Peer, dict]:
        peer, binding = self.host.peer, self.host.applied.get(plugin_id)
        if peer is None or binding is None:
            raise OpError("not_running", f"{plugin_id} is not running", plugin=plugin_id)
        return peer, binding

    async def _components(self, plugin_id: str, kind: str) -> list[dict]:
        peer, binding = self._connection(plugin_id)
        data = await peer.call(f"list_{kind}", {"include_plugins": [plugin_id]}, binding)
        return [item["manifest"] for item in data[kind] if item.get("owner") == plugin_id]

    async def _listing(self, plugin_id: str | None, kind: str) -> list[dict]:
        found = []
        for pid in self._targets(plugin_id):
            found += [_describe(pid, manifest, kind) for manifest in await self._components(pid, kind)]
        return found

    async def _require(self, plugin_id: str, kind: str, name: Any) -> None:
        names = [m.get("metadata", {}).get("name") for m in await self._components(plugin_id, kind)]
        if name not in names:
            hint = f"See `lbctl {kind} {plugin_id}`."
            raise OpError("not_found", f"{plugin_id} has no {kind[:-1]} {name!r}", hint=hint)

    async def _op_tools(self, request: dict) -> dict:
        return {"tools": await self._listing(request.get("id"), "tools")}

    async def _op_commands(self, request: dict) -> dict:
        return {"commands": await self._listing(request.get("id"), "commands")}

    async def _op_call_tool(self, request: dict) -> dict:
        plugin_id, tool, args = self._running_or_fail(request.get("id")), request.get("tool"), request.get("args")
        if not isinstance(args, dict):
            raise OpError("bad_request", "tool arguments must be a JSON object")
        await self._require(plugin_id, "tools", tool)
        peer, binding = self._connection(plugin_id)
        with self.host.callbacks.query(plugin_id) as query:
            data = {"tool_name": tool, "tool_parameters": args, "session": _session(), "query_id": query.id,
                    "include_plugins": [plugin_id]}  # fmt: skip
            try:
                reply = await peer.call("call_tool", data, binding, timeout=180)
            except ActionFailed as exc:
                raise _plugin_failed(plugin_id, exc) from None
        return {"result": reply.get("tool_response"), **({"replies": query.output} if query.output else {})}

    async def _op_run_command(self, request: dict) -> dict:
        """The command's frames, and the messages it replied meanwhile, in the order they came."""
        plugin_id = self._running_or_fail(request.get("id"))
        words = str(request.get("text") or "").strip().lstrip("!/").split()
        if not words:
            raise OpError("bad_request", "the command text is empty")
        await self._require(plugin_id, "commands", words[0])
        peer, binding = self._connection(plugin_id)
        with self.host.callbacks.query(plugin_id) as query:
            data = {"command_context": _command_context(words, query.id), "include_plugins": [plugin_id]}
            try:
                async for frame in peer.stream("execute_command", data, binding, frame_timeout=180):
                    query.output.append({k: v for k, v in frame.items() if v is not None})
            except ActionFailed as exc:
                raise _plugin_failed(plugin_id, exc) from None
        return {"result": query.output}


def _plugin_failed(plugin_id: str, exc: ActionFailed) -> Exception:
    """The plugin's own error (spec §6, exit 9) when the runtime relayed one; else the runtime's, as it was."""
    message = str(exc)
    own = relayed_error(message) or (message if message.startswith(PLUGIN_ERRORS) else None)
    if own is None:
        return exc
    hint = f"See `lbctl logs {plugin_id}`."
    if own == NO_SUBCOMMAND:
        hint = f"The command may have no such subcommand (langbot-plugin reports that so). {hint}"
    return OpError("plugin_failed", f"{plugin_id} failed: {own}", hint=hint, plugin=plugin_id)


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


def _line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _describe(plugin_id: str, manifest: dict, kind: str) -> dict:
    meta = manifest.get("metadata") or {}
    item = {"plugin": plugin_id, "name": meta.get("name"), "description": _text(meta.get("description"))}
    if kind == "tools":
        item["parameters"] = (manifest.get("spec") or {}).get("parameters")
    return item


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("en_US") or next(iter(value.values()), ""))
    return str(value or "")


def _session() -> dict:
    return {"launcher_type": "person", "launcher_id": "lbctl", "sender_id": "lbctl"}


def _command_context(words: list[str], query_id: int) -> dict:
    text = " ".join(words)
    return {"query_id": query_id, "session": _session(), "command_text": text, "full_command_text": f"!{text}",
            "command": words[0], "crt_command": words[0], "params": words[1:], "crt_params": words[1:],
            "privilege": 2}  # fmt: skip
