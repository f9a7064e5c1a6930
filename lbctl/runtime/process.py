"""`lbp rt` as the host's child: the control protocol on its stdin and stdout, its log on stderr (logs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Callable, Final

from lbctl.runtime.logs import StderrChannel
from lbctl.runtime.protocol import StdioTransport

RUNTIME_CMD: Final = [sys.executable, "-m", "langbot_plugin.cli.__init__", "rt"]


def runtime_command() -> list[str]:
    """How to start `lbp rt`; LBCTL_RUNTIME_COMMAND replaces it (another interpreter, or a test double)."""
    override = os.environ.get("LBCTL_RUNTIME_COMMAND")
    return shlex.split(override) if override else list(RUNTIME_CMD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


OnChunk = Callable[["int | None", bytes], None]


class RuntimeProcess:
    def __init__(self, child: asyncio.subprocess.Process, port: int, stderr: StderrChannel, on_chunk: OnChunk):
        self.child, self.port = child, port
        self.transport = StdioTransport(child.stdout, child.stdin)
        self.stderr = asyncio.create_task(stderr.read(on_chunk))

    @classmethod
    async def start(cls, cwd: Path, pypi_index_url: str | None, on_chunk: OnChunk) -> RuntimeProcess:
        """Start the runtime; whatever it or its workers write to stderr goes to `on_chunk(pid, data)`."""
        port = free_port()
        command = [*runtime_command(), "-s", "--skip-deps-check", "--ws-debug-port", str(port)]
        if pypi_index_url:
            command += ["--pypi-index-url", pypi_index_url]
        stderr = StderrChannel()
        try:
            # A new session makes the runtime and its plugin workers one process group we can kill as a whole.
            child = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr.child_end(), cwd=cwd, start_new_session=True, limit=4 * 1024 * 1024,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        except BaseException:
            stderr.close()
            raise
        stderr.spawned()
        return cls(child, port, stderr, on_chunk)

    @property
    def pid(self) -> int:
        return self.child.pid

    async def stop(self) -> int | None:
        """SIGTERM, ten seconds' grace, then SIGKILL for the whole group; returns the runtime's exit code."""
        with contextlib.suppress(ProcessLookupError):
            self.child.send_signal(signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.child.wait(), 10)
        # Workers of a dead runtime keep its process group; take them down too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGKILL)
        code = await self.child.wait()
        # Every writer is dead now, so the last lines (a crash's traceback) arrive before EOF.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.stderr), 5)
        self.stderr.cancel()
        return code
