"""`lbctl runtime serve`: host the LangBot Plugin Runtime and keep it at the environment's desired state.

The host owns everything the Runtime does not store (runtime-control-protocol.md §9, §16): identity and
worker policy (HOME/runtime/host.json), one stable installation uuid per plugin, settings and config (the
environment), plugin storage (HOME/storage.db). Plugins run on the desired-state path (§10.3).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import shlex
import signal
import socket
import struct
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, Iterator

from lbctl.errors import LbctlError, PreconditionError
from lbctl.fsutil import write_atomic
from lbctl.runtime.client import short_address, socket_path
from lbctl.runtime.protocol import (
    ActionFailed,
    ConnectionLost,
    HostAPIError,
    Peer,
    StdioTransport,
    WebSocketTransport,
)
from lbctl.runtime.storage import Storage, StorageKeyMissing
from lbctl.state import Environment, State

log = logging.getLogger(__name__)

WORKER_POLICY: Final = {
    "max_cpus": 1.0, "max_memory_mb": 512, "max_pids": 128, "max_open_files": 256, "max_file_size_mb": 512,
    "max_workers": 16, "max_total_cpus": 8.0, "max_total_memory_mb": 8192, "max_installations": 10000,
    "max_concurrent_restarts": 1, "restart_failure_threshold": 8, "restart_failure_window_seconds": 30.0,
    "restart_circuit_open_seconds": 60.0, "require_hard_limits": False,
}  # fmt: skip
START_TIMEOUT: Final = float(os.environ.get("LBCTL_RUNTIME_START_TIMEOUT", "30"))
APPLY_TIMEOUT: Final = 660.0  # the Runtime allows 600 s for a dependency environment
POLL_INTERVAL: Final = 0.5
HEARTBEAT_TICKS: Final = 40  # ping every 20 s, as LangBot does; three misses count as a dead runtime
SETTLED: Final = frozenset({"running", "failed", "disabled", "removed"})
LEVEL: Final = re.compile(r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\]")
SAFE_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
RUNTIME_CMD: Final = [sys.executable, "-m", "langbot_plugin.cli.__init__", "rt"]

Event = Callable[[dict], None]


class OpError(Exception):
    """A socket request that fails; becomes `{"ok": false, "error": {...}}`."""

    def __init__(self, code: str, message: str, *, hint: str | None = None, plugin: str | None = None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "hint": hint, "plugin": plugin}


@dataclass
class Live:
    state: str = "starting"
    error: str | None = None
    since: float = field(default_factory=time.monotonic)
    logs: deque = field(default_factory=lambda: deque(maxlen=1000))


class HostFile:
    """HOME/runtime/host.json: the handshake values and the installation of every plugin ever applied."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except FileNotFoundError:
            self.data = self._create()
            self.save()

    @staticmethod
    def _create() -> dict:
        instance = f"instance_{uuid.uuid4()}"
        return {"schema": 1, "instance_uuid": instance, "workspace_uuid": str(uuid.uuid4()),
                "placement_generation": 1, "worker_policy": WORKER_POLICY, "installations": {}}  # fmt: skip

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1).encode(), mode=0o600)

    def handshake(self) -> dict:
        instance = self.data["instance_uuid"]
        return {
            "runtime_identity": {"instance_uuid": instance, "runtime_id": f"{instance}:plugin-runtime"},
            "worker_policy": self.data["worker_policy"],
            "runtime_profile": "oss_dev",
        }

    def installation(self, plugin_id: str) -> dict:
        blank = {"uuid": str(uuid.uuid4()), "revision": 0, "digest": None, "fingerprint": None, "active": False}
        return self.data["installations"].setdefault(plugin_id, blank)

    def binding(self, plugin_id: str) -> dict:
        inst = self.data["installations"][plugin_id]
        return {
            "instance_uuid": self.data["instance_uuid"],
            "workspace_uuid": self.data["workspace_uuid"],
            "placement_generation": self.data["placement_generation"],
            "installation_uuid": inst["uuid"],
            "runtime_revision": inst["revision"],
            "artifact_digest": inst["digest"],
        }

    def plugin_of(self, installation_uuid: Any) -> str | None:
        for plugin_id, inst in self.data["installations"].items():
            if inst["uuid"] == installation_uuid:
                return plugin_id
        return None


def fingerprint(sha256: str, config: dict) -> str:
    return hashlib.sha256(json.dumps([sha256, config], sort_keys=True).encode()).hexdigest()


def runtime_command() -> list[str]:
    """How to start `lbp rt`; LBCTL_RUNTIME_COMMAND replaces it (another interpreter, or a test double)."""
    override = os.environ.get("LBCTL_RUNTIME_COMMAND")
    return shlex.split(override) if override else list(RUNTIME_CMD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("en_US") or next(iter(value.values()), ""))
    return str(value or "")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class Host:
    def __init__(self, env: Environment, *, connect: str | None, token: str | None,
                 pypi_index_url: str | None, on_event: Event | None):  # fmt: skip
        self.env, self.connect, self.token, self.pypi_index_url = env, connect, token, pypi_index_url
        self.on_event = on_event or (lambda event: None)
        self.dir = env.home / "runtime"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.file = HostFile(self.dir / "host.json")
        self.storage = Storage(env.home / "storage.db")
        self.live: dict[str, Live] = {}
        self.applied: dict[str, dict] = {}
        self.runtime_log: deque = deque(maxlen=2000)
        self.runtime_version: str | None = None
        self.peer: Peer | None = None
        self.stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._followers: set[asyncio.Queue] = set()
        self._revision: int | None = None
        self._last_plugin: str | None = None
        self._child: asyncio.subprocess.Process | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        server = await self._listen()
        self._sync_live(self.env.load())
        tasks = [asyncio.create_task(self._supervise()), asyncio.create_task(self._watch())]
        try:
            await self.stopping.wait()
        finally:
            server.close()
            await self._shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            socket_path(self.env.home).unlink(missing_ok=True)
            self.storage.close()
        self._emit(event="host", state="stopped")
        return 0

    async def _supervise(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await self._session()
            except (OSError, ConnectionLost, ActionFailed, TimeoutError, LbctlError) as exc:
                log.warning("runtime connection ended: %s", exc)
            except Exception as exc:  # e.g. websockets' InvalidStatus on a wrong token
                log.warning("runtime connection failed: %s: %s", type(exc).__name__, exc)
            if self.stopping.is_set():
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            self._lost("reconnecting to the runtime" if self.connect else "the runtime stopped; restarting it")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _session(self) -> None:
        transport, port = await self._open()
        peer = Peer(transport, self._handle)
        reader = asyncio.create_task(peer.run())
        monitor: asyncio.Task | None = None
        try:
            await peer.call("set_runtime_config", self.file.handshake())
            self.peer, self.applied = peer, {}
            self.runtime_version = await self._probe_version(port)
            self._emit(event="runtime", state="running", version=self.runtime_version)
            await self.reconcile()
            monitor = asyncio.create_task(self._monitor(peer))
            done, _ = await asyncio.wait({reader, monitor}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self.peer = None
            for task in (monitor, reader):
                if task:
                    task.cancel()
            await transport.close()
            await self._stop_child()

    async def _open(self) -> tuple[Any, int | None]:
        if self.connect:
            return await WebSocketTransport.connect(self.connect, self.token), None
        port = free_port()
        command = [*runtime_command(), "-s", "--skip-deps-check", "--ws-debug-port", str(port)]
        if self.pypi_index_url:
            command += ["--pypi-index-url", self.pypi_index_url]
        # A new session makes the runtime and its plugin workers one process group we can kill as a whole.
        self._child = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self.dir, start_new_session=True, limit=4 * 1024 * 1024,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        asyncio.create_task(self._read_stderr(self._child.stderr))
        self._emit(event="runtime", state="starting", pid=self._child.pid)
        return StdioTransport(self._child.stdout, self._child.stdin), port

    async def _probe_version(self, port: int | None) -> str | None:
        import httpx

        url = f"http://127.0.0.1:{port}/healthz" if port else re.sub(r"^ws", "http", self.connect or "")
        url = url if port else re.sub(r"(//[^/]+).*$", r"\1/healthz", url)
        try:
            async with httpx.AsyncClient(timeout=3.0, trust_env=False) as http:
                return (await http.get(url)).json()["runtime"]["version"]
        except Exception:
            return None

    async def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(child.wait(), 10)
        # Workers of a dead runtime keep its process group; take them down too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        await child.wait()
        self._emit(event="runtime", state="stopped", returncode=child.returncode)

    async def _shutdown(self) -> None:
        peer = self.peer
        if peer is not None and self.connect:
            with contextlib.suppress(Exception):
                await peer.call("reconcile_plugin_installations", {"installations": []}, timeout=10)
        if peer is not None:
            await peer.transport.close()
        await self._stop_child()

    def _lost(self, reason: str) -> None:
        self.applied = {}
        for plugin_id, live in self.live.items():
            if live.state != "disabled":
                self._set(plugin_id, "starting", reason)

    # -- desired state -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(POLL_INTERVAL)
            try:
                revision = self.env.load().revision
            except LbctlError as exc:
                log.warning("cannot read the environment: %s", exc.message)
                continue
            if revision != self._revision:
                with contextlib.suppress(ConnectionLost):
                    await self.reconcile()

    async def reconcile(self, *, restart: str | None = None) -> None:
        """Make the runtime run exactly the enabled plugins of the environment, with their current config."""
        async with self._lock:
            state = self.env.load()
            self._revision = state.revision
            self._sync_live(state)
            peer = self.peer
            if peer is None:
                return
            for plugin_id in self._stale(state):
                await self._remove(peer, plugin_id)
            for plugin_id, record in sorted(state.plugins.items()):
                if record.enabled:
                    await self._ensure(peer, state, plugin_id, force=plugin_id == restart)

    def _sync_live(self, state: State) -> None:
        for plugin_id in set(self.live) - set(state.plugins):
            del self.live[plugin_id]
            self._emit(event="plugin", id=plugin_id, state="removed", error=None)
        for plugin_id, record in state.plugins.items():
            live = self.live.setdefault(plugin_id, Live())
            if not record.enabled:
                self._set(plugin_id, "disabled")
            elif live.state == "disabled":
                self._set(plugin_id, "starting")

    def _stale(self, state: State) -> list[str]:
        installations = self.file.data["installations"]
        return [
            plugin_id for plugin_id, inst in installations.items()
            if inst["active"] and not (plugin_id in state.plugins and state.plugins[plugin_id].enabled)
        ]  # fmt: skip

    async def _remove(self, peer: Peer, plugin_id: str) -> None:
        with contextlib.suppress(ActionFailed, TimeoutError):
            await peer.call("remove_plugin_installation", {}, self.file.binding(plugin_id))
        self.file.data["installations"][plugin_id]["active"] = False
        self.file.save()
        self.applied.pop(plugin_id, None)

    async def _ensure(self, peer: Peer, state: State, plugin_id: str, *, force: bool) -> None:
        record = state.plugins[plugin_id]
        inst = self.file.installation(plugin_id)
        mark = fingerprint(record.sha256, state.config.get(plugin_id, {}))
        changed = inst["fingerprint"] != mark or not inst["active"]
        if not (force or changed or plugin_id not in self.applied):
            return
        if changed or force:
            inst["revision"] += 1
        inst.update(digest=record.sha256, fingerprint=mark, active=True)
        self.file.save()
        self.applied.pop(plugin_id, None)  # no liveness probe may see the old worker as the new one
        self._set(plugin_id, "starting")
        try:
            result = await self._apply(peer, plugin_id, record.sha256)
        except (ActionFailed, TimeoutError, OSError) as exc:
            result = {"state": "failed", "message": str(exc)}
        self.applied[plugin_id] = self.file.binding(plugin_id)
        if result.get("state") in ("failed", "artifact_missing"):
            self._set(plugin_id, "failed", result.get("message") or result.get("error_code") or result["state"])

    async def _apply(self, peer: Peer, plugin_id: str, sha256: str) -> dict:
        binding = self.file.binding(plugin_id)
        result = await peer.call("apply_plugin_installation", {"enabled": True}, binding, timeout=APPLY_TIMEOUT)
        if result.get("state") != "artifact_missing":
            return result
        key = await peer.upload(self.env.package_path(sha256).read_bytes(), binding)
        data = {"artifact_file_key": key, "enabled": True}
        return await peer.call("apply_plugin_installation", data, binding, timeout=APPLY_TIMEOUT)

    async def _monitor(self, peer: Peer) -> None:
        misses = 0
        for tick in itertools.count(1):
            await asyncio.sleep(POLL_INTERVAL)
            for plugin_id, binding in list(self.applied.items()):
                await self._probe(peer, plugin_id, binding)
            if tick % HEARTBEAT_TICKS == 0:
                misses = 0 if await self._ping(peer) else misses + 1
            if misses >= 3:
                raise ConnectionLost("the runtime stopped answering pings")

    @staticmethod
    async def _ping(peer: Peer) -> bool:
        try:
            await peer.call("__ping", {}, timeout=10)
        except (TimeoutError, ActionFailed):
            return False
        return True

    async def _probe(self, peer: Peer, plugin_id: str, binding: dict) -> None:
        live = self.live.get(plugin_id)
        try:
            plugins = (await peer.call("list_plugins", {}, binding, timeout=10))["plugins"]
        except (ActionFailed, TimeoutError):
            return  # a newer revision replaced this binding meanwhile
        if live is None or self.applied.get(plugin_id) != binding:
            return
        if any(p.get("status") == "initialized" for p in plugins):
            self._set(plugin_id, "running")
        elif live.state == "running":
            self._set(plugin_id, "starting", "the plugin stopped; the runtime is restarting it")
        elif live.state == "starting" and time.monotonic() - live.since > START_TIMEOUT:
            self._set(plugin_id, "failed", self._failure(plugin_id))

    def _failure(self, plugin_id: str) -> str:
        errors = [e["text"] for e in self.live[plugin_id].logs if e["level"] in ("ERROR", "CRITICAL")]
        reason = f"did not start within {START_TIMEOUT:g} s"
        return f"{reason}: {errors[-1]}" if errors else f"{reason} (see `lbctl logs {plugin_id}`)"

    def _set(self, plugin_id: str, state: str, error: str | None = None) -> None:
        live = self.live.get(plugin_id)
        if live is None or (live.state, live.error) == (state, error):
            return
        if live.state != state:
            live.since = time.monotonic()
        live.state, live.error = state, error
        log.info("%s: %s%s", plugin_id, state, f" ({error})" if error else "")
        self._emit(event="plugin", id=plugin_id, state=state, error=error)

    def _emit(self, **event: Any) -> None:
        with contextlib.suppress(Exception):
            self.on_event(event)

    # -- the runtime's requests (§9) -------------------------------------------------------------

    async def _handle(self, action: str, data: dict, context: dict | None) -> dict:
        method = getattr(self, f"_api_{action}", None)
        if method is None:
            raise HostAPIError(f"NotImplementedError: host API '{action}' is not provided by lbctl")
        return method(data, context or {})

    def _plugin(self, context: dict) -> str:
        plugin_id = self.file.plugin_of(context.get("installation_uuid"))
        if plugin_id is None:
            raise HostAPIError("PermissionError: the request carries no installation of this host")
        return plugin_id

    def _api_get_plugin_settings(self, data: dict, context: dict) -> dict:
        plugin_id = self._plugin(context)
        if f"{data.get('plugin_author')}/{data.get('plugin_name')}" != plugin_id:
            raise HostAPIError("PermissionError: plugin identity does not match its installation")
        state = self.env.load()
        record = state.plugins.get(plugin_id)
        if record is None:
            raise HostAPIError(f"LookupError: {plugin_id} is not installed")
        info = {k: v for k, v in (("spec", record.spec), ("origin", record.origin)) if v}
        return {
            "enabled": record.enabled, "priority": 0, "plugin_config": state.config.get(plugin_id, {}),
            "install_source": record.source, "install_info": info,
            "installation_uuid": context["installation_uuid"],
            "runtime_revision": context.get("runtime_revision"), "artifact_digest": context.get("artifact_digest"),
        }  # fmt: skip

    def _api_initialize_plugin_settings(self, data: dict, context: dict) -> dict:
        return {}  # only the legacy install path sends it; provenance lives in the environment

    def _owner(self, data: dict, context: dict) -> tuple[str, str]:
        plugin_id = self._plugin(context)
        if data.get("owner_type") == "workspace":
            return "workspace", self.file.data["workspace_uuid"]
        return "plugin", plugin_id

    def _api_set_binary_storage(self, data: dict, context: dict) -> dict:
        try:
            value = base64.b64decode(data.get("value_base64", ""), validate=True)
            self.storage.set(*self._owner(data, context), str(data["key"]), value)
        except (ValueError, KeyError) as exc:
            raise HostAPIError(f"ValueError: {exc}") from None
        return {}

    def _api_get_binary_storage(self, data: dict, context: dict) -> dict:
        key = str(data.get("key"))
        try:
            value = self.storage.get(*self._owner(data, context), key)
        except StorageKeyMissing:
            raise HostAPIError(f"ValueError: Storage with key {key} not found") from None
        return {"value_base64": base64.b64encode(value).decode()}

    def _api_get_binary_storage_keys(self, data: dict, context: dict) -> dict:
        return {"keys": self.storage.keys(*self._owner(data, context))}

    def _api_delete_binary_storage(self, data: dict, context: dict) -> dict:
        self.storage.delete(*self._owner(data, context), str(data.get("key")))
        return {}

    def _api_get_config_file(self, data: dict, context: dict) -> dict:
        plugin_id, key = self._plugin(context), str(data.get("file_key"))
        config = self.env.load().config.get(plugin_id, {})
        # Serve only files this plugin's own config refers to (LangBot does the same).
        if not SAFE_KEY.match(key) or key not in set(_strings(config)):
            raise HostAPIError(f"PermissionError: file {key!r} is not in the config of {plugin_id}")
        try:
            return {"file_base64": base64.b64encode((self.env.files_dir / key).read_bytes()).decode()}
        except OSError:
            raise HostAPIError(f"FileNotFoundError: config file {key!r} is missing") from None

    # -- log lines -----------------------------------------------------------------------------------

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(ValueError, ConnectionError):
            async for raw in stream:
                self._log_line(raw.decode(errors="replace").rstrip())

    def _log_line(self, text: str) -> None:
        if not text:
            return
        match = LEVEL.search(text)
        plugin_id = self._attribute(text)
        entry = {"ts": time.time(), "level": match.group(1) if match else "INFO", "text": text, "plugin": plugin_id}
        self.runtime_log.append(entry)
        if plugin_id in self.live:
            self.live[plugin_id].logs.append(entry)
        for queue in self._followers:
            queue.put_nowait(entry)

    def _attribute(self, text: str) -> str | None:
        """Workers share the runtime's stderr: a line naming a plugin (or its installation) belongs to it,
        and the lines after it (its log output, tracebacks) too, until another plugin is named."""
        for plugin_id, inst in self.file.data["installations"].items():
            if plugin_id in text or inst["uuid"] in text:
                self._last_plugin = plugin_id
                return plugin_id
        return self._last_plugin

    # -- the local socket ------------------------------------------------------------------------

    async def _listen(self) -> asyncio.AbstractServer:
        path = socket_path(self.env.home)
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            with short_address(path) as address:
                sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        return await asyncio.start_unix_server(self._client, sock=sock, limit=1024 * 1024)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self._same_user(writer):
                return
            request = json.loads(await asyncio.wait_for(reader.readline(), 10) or b"{}")
            request = request if isinstance(request, dict) else {}
            if request.get("op") == "follow":
                return await self._follow(request, reader, writer)
            try:
                reply = {"ok": True, "data": await self._op(request)}
            except OpError as exc:
                reply = {"ok": False, "error": exc.error}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ValueError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _same_user(writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1] == os.getuid()

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

    async def _op_status(self, request: dict) -> dict:
        plugins = [{"id": pid, "state": live.state, "error": live.error} for pid, live in sorted(self.live.items())]
        return {"host": True, "runtime_version": self.runtime_version, "plugins": plugins}

    async def _op_logs(self, request: dict) -> dict:
        lines = self._log_source(request.get("id"))
        return {"lines": list(lines)[-max(int(request.get("n") or 100), 0) :]}

    def _log_source(self, plugin_id: str | None) -> deque:
        if plugin_id is None:
            return self.runtime_log
        if plugin_id not in self.live:
            raise OpError("not_installed", f"{plugin_id} is not installed", plugin=plugin_id)
        return self.live[plugin_id].logs

    async def _follow(self, request: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plugin_id, queue = request.get("id"), asyncio.Queue()
        try:
            backlog = list(self._log_source(plugin_id))[-int(request.get("n") or 10) :]
        except OpError as exc:
            writer.write(json.dumps({"ok": False, "error": exc.error}).encode() + b"\n")
            return
        self._followers.add(queue)
        try:
            for entry in backlog:
                writer.write(json.dumps({"line": entry}).encode() + b"\n")
            while not self.stopping.is_set():
                entry = await queue.get()
                if plugin_id is None or entry["plugin"] == plugin_id:
                    writer.write(json.dumps({"line": entry}).encode() + b"\n")
                    await writer.drain()
        finally:
            self._followers.discard(queue)

    async def _op_reconcile(self, request: dict) -> dict:
        await self.reconcile()
        return {"states": await self._settle(request.get("ids") or [], float(request.get("timeout") or 60))}

    async def _op_restart(self, request: dict) -> dict:
        plugin_id = self._running_or_fail(request.get("id"), states=("running", "starting", "failed"))
        await self.reconcile(restart=plugin_id)
        settled = await self._settle([plugin_id], float(request.get("timeout") or 60))
        return {"id": plugin_id, **settled[plugin_id]}

    async def _settle(self, ids: list[str], timeout: float) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            states = {pid: self._state_of(pid) for pid in ids}
            if all(s["state"] in SETTLED for s in states.values()) or time.monotonic() >= deadline:
                return states
            await asyncio.sleep(0.1)

    def _state_of(self, plugin_id: str) -> dict:
        live = self.live.get(plugin_id)
        return {"state": live.state, "error": live.error} if live else {"state": "removed", "error": None}

    def _running_or_fail(self, plugin_id: Any, *, states: tuple[str, ...] = ("running",)) -> str:
        if plugin_id not in self.live:
            raise OpError("not_installed", f"{plugin_id} is not installed", plugin=plugin_id)
        live = self.live[plugin_id]
        if live.state in states:
            return plugin_id
        hint = "See `lbctl runtime status` and `lbctl logs`."
        raise OpError("not_running", f"{plugin_id} is {live.state}", hint=hint, plugin=plugin_id)

    def _targets(self, plugin_id: str | None) -> list[str]:
        if plugin_id is not None:
            return [self._running_or_fail(plugin_id)]
        return [pid for pid, live in sorted(self.live.items()) if live.state == "running"]

    def _connection(self, plugin_id: str) -> tuple[Peer, dict]:
        peer, binding = self.peer, self.applied.get(plugin_id)
        if peer is None or binding is None:
            raise OpError("not_running", f"{plugin_id} is not running", plugin=plugin_id)
        return peer, binding

    async def _components(self, plugin_id: str, kind: str) -> list[dict]:
        peer, binding = self._connection(plugin_id)
        data = await peer.call(f"list_{kind}", {"include_plugins": [plugin_id]}, binding)
        return [item["manifest"] for item in data[kind] if item.get("owner") == plugin_id]

    async def _op_tools(self, request: dict) -> dict:
        tools = []
        for plugin_id in self._targets(request.get("id")):
            for manifest in await self._components(plugin_id, "tools"):
                meta, spec = manifest.get("metadata") or {}, manifest.get("spec") or {}
                tools.append({"plugin": plugin_id, "name": meta.get("name"),
                              "description": _text(meta.get("description")), "parameters": spec.get("parameters")})  # fmt: skip
        return {"tools": tools}

    async def _op_commands(self, request: dict) -> dict:
        commands = []
        for plugin_id in self._targets(request.get("id")):
            for manifest in await self._components(plugin_id, "commands"):
                meta = manifest.get("metadata") or {}
                commands.append({"plugin": plugin_id, "name": meta.get("name"), "description": _text(meta.get("description"))})
        return {"commands": commands}

    async def _op_call_tool(self, request: dict) -> dict:
        plugin_id, tool, args = self._running_or_fail(request.get("id")), request.get("tool"), request.get("args")
        if not isinstance(args, dict):
            raise OpError("bad_request", "tool arguments must be a JSON object")
        if tool not in [m.get("metadata", {}).get("name") for m in await self._components(plugin_id, "tools")]:
            raise OpError("not_found", f"{plugin_id} has no tool {tool!r}", hint=f"See `lbctl tools {plugin_id}`.")
        data = {"tool_name": tool, "tool_parameters": args, "session": _session(), "query_id": 0,
                "include_plugins": [plugin_id]}  # fmt: skip
        peer, binding = self._connection(plugin_id)
        reply = await peer.call("call_tool", data, binding, timeout=180)
        return {"result": reply.get("tool_response")}

    async def _op_run_command(self, request: dict) -> dict:
        plugin_id = self._running_or_fail(request.get("id"))
        words = str(request.get("text") or "").strip().lstrip("!/").split()
        if not words:
            raise OpError("bad_request", "the command text is empty")
        if words[0] not in [m.get("metadata", {}).get("name") for m in await self._components(plugin_id, "commands")]:
            raise OpError("not_found", f"{plugin_id} has no command {words[0]!r}", hint=f"See `lbctl commands {plugin_id}`.")
        data = {"command_context": _command_context(words), "include_plugins": [plugin_id]}
        peer, binding = self._connection(plugin_id)
        frames = peer.stream("execute_command", data, binding, frame_timeout=180)
        return {"result": [{k: v for k, v in frame.items() if v is not None} async for frame in frames]}


def _session() -> dict:
    return {"launcher_type": "person", "launcher_id": "lbctl", "sender_id": "lbctl"}


def _command_context(words: list[str]) -> dict:
    text = " ".join(words)
    return {"query_id": 0, "session": _session(), "command_text": text, "full_command_text": f"!{text}",
            "command": words[0], "crt_command": words[0], "params": words[1:], "crt_params": words[1:],
            "privilege": 2}  # fmt: skip


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PreconditionError(
                f"A runtime host is already serving {path.parent.parent}",
                hint="Use `lbctl runtime status` to talk to it, or stop it first.",
            ) from None
        yield
    finally:
        os.close(fd)


def serve(env: Environment, *, connect: str | None = None, token: str | None = None,
          pypi_index_url: str | None = None, on_event: Event | None = None) -> int:  # fmt: skip
    """Run the host in the foreground until SIGTERM/SIGINT; returns the exit code (0)."""
    if connect is None and not os.environ.get("LBCTL_RUNTIME_COMMAND") and _missing_runtime():
        raise PreconditionError(
            "The LangBot Plugin Runtime (langbot-plugin) is not installed",
            hint="Install it with `pip install 'lbctl[runtime]'`, or attach to one with --connect.",
        )
    (env.home / "runtime").mkdir(parents=True, exist_ok=True, mode=0o700)
    with _exclusive(env.home / "runtime" / "host.lock"):
        host = Host(env, connect=connect, token=token, pypi_index_url=pypi_index_url, on_event=on_event)
        return asyncio.run(host.run())


def _missing_runtime() -> bool:
    import importlib.util

    return importlib.util.find_spec("langbot_plugin") is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbctl.runtime.host")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--connect")
    parser.add_argument("--token-env")
    parser.add_argument("--pypi-index-url")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    token = os.environ.get(args.token_env) if args.token_env else None
    try:
        return serve(Environment(args.home), connect=args.connect, token=token, pypi_index_url=args.pypi_index_url)
    except LbctlError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
