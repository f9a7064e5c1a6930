"""The runtime's stderr, read so that a line is credited to a plugin only when it provably belongs to it.

Every plugin worker inherits the runtime's stderr, and their lines look alike (runtime-control-protocol.md
§10.5). The runtime's stderr is therefore a Unix socket with SO_PASSCRED: the kernel tells, for every read,
which process wrote it, and never joins the writes of two processes in one read. A worker runs in its
package's artifact directory (`…/artifacts/sha256/<digest>/code`), and the digest names the plugin. Lines the
runtime itself writes belong to a plugin only when they name it or its installation.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import socket
import struct
from typing import Callable, Final

CREDENTIALS: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid
READ_SIZE: Final = 64 * 1024
READS_PER_TURN: Final = 64  # then let the event loop run, however fast the workers write
MAX_LINE: Final = 64 * 1024
SDK_LINE: Final = re.compile(
    r"^\[[^\]]*\] (?:\([^)]*\) )?(?P<file>\S+) \((?P<line>\d+)\) - \[(?P<level>[A-Z]+)\] : (?P<text>.*)$"
)
EXCEPTION_LINE: Final = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception)(?::|$)")
ARTIFACT_DIR: Final = re.compile(r"/artifacts/sha256/([0-9a-f]{64})/code(?:/|$)")
LEVELS: Final = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
# The runtime's stdio connections log these at ERROR whenever a peer goes away, which every plugin restart
# and every shutdown does; they say nothing went wrong, so they are kept at INFO with a translation.
NOISE: Final = {
    "Error receiving message: 标准输出流已关闭。":
        "stdout stream closed: expected when a plugin restarts or the runtime stops",
    "Error receiving message: 标准输出流已关闭，子进程已退出。":
        "stdout stream closed, the process exited: expected when a plugin restarts or the runtime stops",
    "Error receiving message: 标准输出流意外关闭。":
        "a plugin worker's stdout closed: the worker exited; the runtime's next line says what it does next",
    "Error receiving message: Unexpected error in reading":
        "the runtime stopped reading a plugin worker: expected when a plugin restarts or stops",
    "Error receiving message: Connection closed":
        "a plugin worker's process ended: expected when a plugin restarts or stops; the runtime's next line "
        "says so when it was a crash",
}  # fmt: skip

Installations = dict  # plugin id -> {"uuid", "digest", ...} (HostFile.data["installations"])


class StderrChannel:
    """A socketpair to pass as a child's stderr; `read` reports each chunk with the pid that wrote it."""

    def __init__(self) -> None:
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._ours.setblocking(False)

    def child_end(self) -> int:
        return self._theirs.fileno()

    def spawned(self) -> None:
        """The child holds its end now; ours must close, or EOF never comes."""
        self._theirs.close()

    def close(self) -> None:
        self._theirs.close()
        self._ours.close()

    async def read(self, on_chunk: Callable[[int | None, bytes], None]) -> None:
        """Until every writer has closed its end."""
        loop, done = asyncio.get_running_loop(), asyncio.Event()
        loop.add_reader(self._ours.fileno(), self._drain, on_chunk, done)
        try:
            await done.wait()
        finally:
            loop.remove_reader(self._ours.fileno())
            self._ours.close()

    def _drain(self, on_chunk: Callable[[int | None, bytes], None], done: asyncio.Event) -> None:
        for _ in range(READS_PER_TURN):
            try:
                data, ancillary, _, _ = self._ours.recvmsg(READ_SIZE, socket.CMSG_SPACE(CREDENTIALS.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, ancillary = b"", []
            if not data:
                done.set()
                return
            on_chunk(_sender(ancillary), data)


def _sender(ancillary: list) -> int | None:
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= CREDENTIALS.size:
            return CREDENTIALS.unpack_from(payload)[0]
    return None


def artifact_digest(pid: int) -> str | None:
    """The package digest a worker runs from, read from its working directory."""
    try:
        match = ARTIFACT_DIR.search(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    return match.group(1) if match else None


class LineReader:
    """Turns the chunks of each writer into log entries `{"ts", "level", "text", "origin", "plugin"}`."""

    def __init__(self, installations: Callable[[], Installations],
                 digest_of: Callable[[int], "str | None"] = artifact_digest):
        self.installations = installations
        self.digest_of = digest_of
        self._pending: dict[int | None, bytes] = {}
        self._level: dict[int | None, str] = {}
        self._digests: dict[int, str] = {}

    def feed(self, pid: int | None, data: bytes) -> list[dict]:
        pending = self._pending.pop(pid, b"") + data
        *lines, rest = pending.split(b"\n")
        if rest:
            self._pending[pid] = rest[-MAX_LINE:]
        writer = self._writer(pid)
        return [entry for raw in lines if (entry := self._entry(pid, writer, raw.decode(errors="replace")))]

    def flush(self) -> list[dict]:
        """The unfinished last line of every writer (at the end of the runtime)."""
        pending, self._pending = self._pending, {}
        entries = (self._entry(pid, self._writer(pid), raw.decode(errors="replace")) for pid, raw in pending.items())
        return [entry for entry in entries if entry]

    def _writer(self, pid: int | None) -> str | None:
        """The plugin whose worker `pid` is; remembered, because a worker that crashes is gone when read."""
        if pid is None:
            return None
        digest = self.digest_of(pid) or self._digests.get(pid)
        if digest is None:
            return None
        self._digests[pid] = digest
        return next((plugin_id for plugin_id, inst in self.installations().items() if inst.get("digest") == digest), None)

    def _entry(self, pid: int | None, writer: str | None, raw: str) -> dict | None:
        raw = raw.rstrip("\r")
        if not raw.strip():
            return None
        level, origin, text = self._parse(pid, raw)
        if text in NOISE:
            level, text = "INFO", f"{text} ({NOISE[text]})"
        return {"ts": now(), "level": level, "text": text, "origin": origin, "plugin": writer or self._named(raw)}

    def _parse(self, pid: int | None, raw: str) -> tuple[str, str | None, str]:
        match = SDK_LINE.match(raw)
        if match and match.group("level") in LEVELS:
            self._level[pid] = match.group("level")
            return match.group("level"), f"{match.group('file')}:{match.group('line')}", match.group("text")
        # A traceback or a multi-line message: it goes on at the level of the line before; its last line is the error.
        return "ERROR" if EXCEPTION_LINE.match(raw) else self._level.get(pid, "INFO"), None, raw

    def _named(self, text: str) -> str | None:
        for plugin_id, inst in self.installations().items():
            if (plugin_id in text and _names(text, plugin_id)) or (inst.get("uuid") and inst["uuid"] in text):
                return plugin_id
        return None


def _names(text: str, plugin_id: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_/-]){re.escape(plugin_id)}(?![A-Za-z0-9_/-])", text) is not None


def now() -> str:
    """ISO 8601 UTC with milliseconds, as every time lbctl prints (spec §6)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
