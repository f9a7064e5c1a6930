"""`lbctl runtime serve`: host the LangBot Plugin Runtime and keep it at the environment's desired state.

The host owns everything the Runtime does not store (runtime-control-protocol.md §9, §16): identity and
worker policy (HOME/runtime/host.json), one stable installation uuid per plugin, settings and config (the
environment), plugin storage (HOME/storage.db). Plugins run on the desired-state path (§10.3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, Iterator

from lbctl.errors import LbctlError, PreconditionError
from lbctl.fsutil import read_own_file
from lbctl.runtime.callbacks import Callbacks
from lbctl.runtime.control import Control
from lbctl.runtime.hostfile import HostFile
from lbctl.runtime.logs import LineReader
from lbctl.runtime.process import RuntimeProcess
from lbctl.runtime.protocol import ActionFailed, ConnectionLost, Peer, WebSocketTransport, relayed_error
from lbctl.runtime.storage import Storage
from lbctl.state import Environment, State

log = logging.getLogger(__name__)

START_TIMEOUT: Final = float(os.environ.get("LBCTL_RUNTIME_START_TIMEOUT", "30"))
APPLY_TIMEOUT: Final = 660.0  # the Runtime allows 600 s for a dependency environment
POLL_INTERVAL: Final = 0.5
STARTING_POLL: Final = 0.05  # a starting plugin is probed this often: `install` waits until it is seen running
HEARTBEAT_TICKS: Final = 40  # ping every 20 s, as LangBot does; three misses count as a dead runtime

Event = Callable[[dict], None]


@dataclass
class Live:
    state: str = "starting"
    error: str | None = None
    since: float = field(default_factory=time.monotonic)  # when it entered its state (the runtime's queue)
    turn: float | None = None  # starting: when the runtime's launch of it began, by the host's count
    logs: deque = field(default_factory=lambda: deque(maxlen=1000))


def fingerprint(sha256: str, config: dict) -> str:
    return hashlib.sha256(json.dumps([sha256, config], sort_keys=True).encode()).hexdigest()


class Host:
    """Supervises one runtime (a child process, or the one --connect names) and serves the local socket."""

    def __init__(self, env: Environment, *, connect: str | None, token: str | None,
                 pypi_index_url: str | None, on_event: Event | None):  # fmt: skip
        self.env, self.connect, self.token, self.pypi_index_url = env, connect, token, pypi_index_url
        self.on_event = on_event or (lambda event: None)
        self.dir = env.home / "runtime"
        self.file = HostFile(self.dir / "host.json")
        env.finish_purges()  # a purge a killed run committed deletes its rows before any plugin can read them
        self.storage = Storage(env.home / "storage.db")
        self.callbacks = Callbacks(env, self.file, self.storage)
        self.control = Control(self)
        self.live: dict[str, Live] = {}
        self.applied: dict[str, dict] = {}
        self.runtime_log: deque = deque(maxlen=2000)
        self.lines = LineReader(lambda: self.file.data["installations"])
        self.runtime_version: str | None = None
        self.peer: Peer | None = None
        self.stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._revision: int | None = None
        self._child: RuntimeProcess | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        await self.control.open()
        self._sync_live(self.env.load())
        tasks = [asyncio.create_task(self._supervise()), asyncio.create_task(self._watch())]
        try:
            await self.stopping.wait()
        finally:
            self.control.close()
            await self._shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.storage.close()
        self._emit(event="host", state="stopped")
        return 0

    async def _supervise(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await self._session()
            except Exception as exc:
                self._report(exc)
            if self.stopping.is_set():
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            self._lost("reconnecting to the runtime" if self.connect else "the runtime stopped; restarting it")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _report(self, exc: Exception) -> None:
        if self.stopping.is_set():
            return  # the host closed the connection itself; the monitor or a request may fail on it meanwhile
        if isinstance(exc, (OSError, ConnectionLost, ActionFailed, TimeoutError, LbctlError)):
            log.warning("runtime connection ended: %s", exc)
        else:  # e.g. websockets' InvalidStatus on a wrong token
            log.warning("runtime connection failed: %s: %s", type(exc).__name__, exc)

    async def _session(self) -> None:
        transport, port = await self._open()
        peer = Peer(transport, self.callbacks.handle)
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
        self._child = await RuntimeProcess.start(self.dir, self.pypi_index_url, self._log_chunk)
        self._emit(event="runtime", state="starting", pid=self._child.pid)
        return self._child.transport, self._child.port

    async def _probe_version(self, port: int | None) -> str | None:
        """The runtime's version from its /healthz, else (for a child we started) the installed package's."""
        import httpx

        url = f"http://127.0.0.1:{port}/healthz" if port else re.sub(r"^ws", "http", self.connect or "")
        url = url if port else re.sub(r"(//[^/]+).*$", r"\1/healthz", url)
        try:
            async with httpx.AsyncClient(timeout=3.0, trust_env=False) as http:
                return (await http.get(url)).json()["runtime"]["version"]
        except Exception:  # noqa: BLE001 - the health route may not be up yet, or report no version
            return _installed_runtime() if port and not os.environ.get("LBCTL_RUNTIME_COMMAND") else None

    async def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            code = await child.stop()
            for entry in self.lines.flush():
                self._record(entry)
            self._emit(event="runtime", state="stopped", returncode=code)

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
        self.applied.pop(plugin_id, None)  # no probe may report it running while it is being removed
        with contextlib.suppress(ActionFailed, TimeoutError):
            await peer.call("remove_plugin_installation", {}, self.file.binding(plugin_id))
        self.file.data["installations"][plugin_id]["active"] = False
        self.file.save()

    async def _ensure(self, peer: Peer, state: State, plugin_id: str, *, force: bool) -> None:
        record = state.plugins[plugin_id]
        inst = self.file.installation(plugin_id)
        mark = fingerprint(record.sha256, state.config.get(plugin_id, {}))
        changed = inst["fingerprint"] != mark or not inst["active"]
        if not (force or changed or plugin_id not in self.applied):
            return
        refused = self._refused(record.sha256)
        if refused is not None:
            self._set(plugin_id, "failed", refused)
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
        elif (live := self.live.get(plugin_id)) is not None and live.state == "starting":
            live.since, live.turn = time.monotonic(), None  # its dependencies are ready: it joins the launch queue

    def _refused(self, sha256: str) -> str | None:
        """Why the runtime must not get this package, or None: a requirement its pip would fetch from elsewhere
        or build (a package stored by an older lbctl, which checked less), refused as `install` refuses it now."""
        from lbctl import lbpkg, requirements

        try:
            info = self.env.package_info(sha256) or lbpkg.read_file(self.env.package_path(sha256), sha256)
            requirements.check(info.requirements)
        except requirements.RequirementRefused as exc:
            return f"not started: {exc.message}"
        except (LbctlError, OSError):
            return None  # a missing or damaged package: the runtime's apply reports it
        return None

    async def _apply(self, peer: Peer, plugin_id: str, sha256: str) -> dict:
        binding = self.file.binding(plugin_id)
        result = await peer.call("apply_plugin_installation", {"enabled": True}, binding, timeout=APPLY_TIMEOUT)
        if result.get("state") != "artifact_missing":
            return result
        key = await peer.upload(read_own_file(self.env.package_path(sha256), 64 << 20), binding)
        data = {"artifact_file_key": key, "enabled": True}
        return await peer.call("apply_plugin_installation", data, binding, timeout=APPLY_TIMEOUT)

    async def _monitor(self, peer: Peer) -> None:
        misses = 0
        for tick in itertools.count(1):
            await self._probe_starting(peer, POLL_INTERVAL)
            self._take_turns()
            for plugin_id, binding in list(self.applied.items()):
                await self._probe(peer, plugin_id, binding)
            if tick % HEARTBEAT_TICKS == 0:
                misses = 0 if await self._ping(peer) else misses + 1
            if misses >= 3:
                raise ConnectionLost("the runtime stopped answering pings")

    async def _probe_starting(self, peer: Peer, period: float) -> None:
        """Wait `period`, probing meanwhile every STARTING_POLL the plugins that are starting."""
        deadline = time.monotonic() + period
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(STARTING_POLL, left))
            self._take_turns()
            for plugin_id, binding in list(self.applied.items()):
                if self.live.get(plugin_id, Live("gone")).state == "starting":
                    await self._probe(peer, plugin_id, binding)

    def _take_turns(self) -> None:
        """Start the clock of the plugins the runtime is launching now.

        The runtime launches plugins max_concurrent_restarts at a time (the policy the host gives it), in the
        order they reached it, and a launch holds its slot until the plugin is up or has failed: a plugin
        behind others in that queue has not started yet, so its START_TIMEOUT has not begun either.
        """
        queue = sorted((live.since, plugin_id) for plugin_id, live in self.live.items()
                       if live.state == "starting" and plugin_id in self.applied)
        slots = max(int(self.file.data["worker_policy"].get("max_concurrent_restarts") or 1), 1)
        now = time.monotonic()
        for _, plugin_id in queue[:slots]:
            self.live[plugin_id].turn = self.live[plugin_id].turn or now

    @staticmethod
    async def _ping(peer: Peer) -> bool:
        try:
            await peer.call("__ping", {}, timeout=10)
        except (TimeoutError, ActionFailed):
            return False
        return True

    async def _probe(self, peer: Peer, plugin_id: str, binding: dict) -> None:
        live = self.live.get(plugin_id)
        before = (live.state, live.since) if live else None
        try:
            plugins = (await peer.call("list_plugins", {}, binding, timeout=10))["plugins"]
        except (ActionFailed, TimeoutError):
            return  # a newer revision replaced this binding meanwhile
        if live is None or self.applied.get(plugin_id) != binding or (live.state, live.since) != before:
            return  # removed, replaced, disabled or otherwise changed while the runtime answered: that answer is old
        if any(p.get("status") == "initialized" for p in plugins):
            self._set(plugin_id, "running")
        elif live.state == "running":
            self._set(plugin_id, "starting", "the plugin stopped; the runtime is restarting it")
        elif live.state == "starting" and live.turn is not None and time.monotonic() - live.turn > START_TIMEOUT:
            self._set(plugin_id, "failed", self._failure(plugin_id))

    def _failure(self, plugin_id: str) -> str:
        errors = [e["text"] for e in self.live[plugin_id].logs if e["level"] in ("ERROR", "CRITICAL")]
        reason = f"did not start within {START_TIMEOUT:g} s"
        if not errors:
            return f"{reason} (see `lbctl logs {plugin_id}`)"
        last = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )", "", errors[-1])  # a traceback's module.path.Error
        return f"{reason}: {relayed_error(last) or last}"

    def _set(self, plugin_id: str, state: str, error: str | None = None) -> None:
        live = self.live.get(plugin_id)
        if live is None or (live.state, live.error) == (state, error):
            return
        if live.state != state:
            live.since, live.turn = time.monotonic(), None
        live.state, live.error = state, error
        log.info("%s: %s%s", plugin_id, state, f" ({error})" if error else "")
        self._emit(event="plugin", id=plugin_id, state=state, error=error)

    def _emit(self, **event: Any) -> None:
        with contextlib.suppress(Exception):
            self.on_event(event)

    # -- log lines -----------------------------------------------------------------------------------

    def _log_chunk(self, pid: int | None, data: bytes) -> None:
        for entry in self.lines.feed(pid, data):
            self._record(entry)

    def _record(self, entry: dict) -> None:
        """Every line goes to the host's log; a line that belongs to a plugin also to that plugin's."""
        self.runtime_log.append(entry)
        if entry["plugin"] in self.live:
            self.live[entry["plugin"]].logs.append(entry)
        self.control.publish(entry)


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


def _installed_runtime() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("langbot-plugin")
    except importlib.metadata.PackageNotFoundError:
        return None
