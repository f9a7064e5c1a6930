"""The CLI side of a running host: a tiny JSON-lines protocol over HOME/runtime/host.sock."""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Iterator

from lbctl.errors import (
    InternalError,
    LbctlError,
    NetworkError,
    NoHostError,
    NotFoundError,
    NotInstalledError,
    PluginFailedError,
    PreconditionError,
    ProtocolError,
    UsageError,
)
from lbctl.runtime import socket_path  # noqa: F401 - also imported from here

NO_HOST_HINT: Final = "Start one with `lbctl runtime serve`."


class RuntimeActionError(ProtocolError):
    """The runtime or the plugin answered an action with an error."""

    code = "runtime_error"


_ERRORS: Final[dict[str, type[LbctlError]]] = {
    "not_installed": NotInstalledError,
    "not_found": NotFoundError,
    "not_running": PreconditionError,
    "bad_request": UsageError,
    "timeout": NetworkError,
    "runtime_error": RuntimeActionError,
    "plugin_failed": PluginFailedError,
    "internal": InternalError,
}


@contextmanager
def short_address(path: Path) -> Iterator[str]:
    """An AF_UNIX address for `path`, going through /proc/self/fd when it is longer than sun_path allows."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class HostClient:
    """Talks to the `lbctl runtime serve` process of one environment."""

    def __init__(self, home: Path, *, timeout: float = 60.0):
        self.home = home
        self.timeout = timeout

    @property
    def socket_path(self) -> Path:
        return socket_path(self.home)

    def is_up(self) -> bool:
        try:
            self._request("status", timeout=5.0)
        except NoHostError:
            return False
        return True

    def status(self) -> dict:
        """Spec §6 `runtime status` data; `{"host": false, ...}` when no host is up (never raises NoHostError)."""
        try:
            return self._request("status", timeout=10.0)
        except NoHostError:
            return {"host": False, "runtime_version": None, "plugins": []}

    def logs(self, plugin_id: str | None, n: int = 100) -> list[dict]:
        """The last `n` log lines `{"ts", "level", "text", "plugin"}`; `None` means every runtime line."""
        return self._request("logs", id=plugin_id, n=n)["lines"]

    def follow(self, plugin_id: str | None, n: int = 10) -> Iterator[dict]:
        """The last `n` lines, then every new one until the host stops (close the iterator to stop)."""
        with self._connect(None) as sock:
            self._send(sock, {"op": "follow", "id": plugin_id, "n": n})
            for message in self._lines(sock):
                if not message.get("ok", True):
                    raise self._error(message["error"])
                yield message["line"]

    def restart(self, plugin_id: str, *, timeout: float = 60.0) -> dict:
        """Restart one plugin and wait until it reports running or failed: `{"id", "state", "error"}`."""
        return self._request("restart", id=plugin_id, timeout=timeout, wait=timeout + 10)

    def tools(self, plugin_id: str | None = None) -> list[dict]:
        return self._request("tools", id=plugin_id)["tools"]

    def commands(self, plugin_id: str | None = None) -> list[dict]:
        return self._request("commands", id=plugin_id)["commands"]

    def call_tool(self, plugin_id: str, tool: str, args: dict) -> Any:
        return self._request("call_tool", id=plugin_id, tool=tool, args=args, wait=200.0)["result"]

    def run_command(self, plugin_id: str, text: str) -> list[dict]:
        """The command's frames (`CommandReturn` fields that are set), in order."""
        return self._request("run_command", id=plugin_id, text=text, wait=200.0)["result"]

    def reconcile_and_wait(self, ids: list[str], timeout: float = 60.0) -> dict[str, dict]:
        """Apply the environment now; wait until each id is running, failed, disabled or removed.

        Returns `{id: {"state", "error"}}`; a plugin still starting at the timeout keeps state "starting".
        """
        return self._request("reconcile", ids=list(ids), timeout=timeout, wait=timeout + 30)["states"]

    def _request(self, op: str, *, wait: float | None = None, **args: Any) -> Any:
        with self._connect(wait or self.timeout) as sock:
            self._send(sock, {"op": op, **args})
            for message in self._lines(sock):
                if message.get("ok"):
                    return message.get("data")
                raise self._error(message.get("error") or {})
        raise ProtocolError("The runtime host closed the connection without an answer")

    @contextmanager
    def _connect(self, timeout: float | None) -> Iterator[socket.socket]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            with short_address(self.socket_path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise NoHostError(f"No runtime host is serving {self.home}", hint=NO_HOST_HINT) from None
        except OSError as exc:
            sock.close()
            raise NoHostError(f"Cannot reach the runtime host of {self.home}: {exc.strerror}", hint=NO_HOST_HINT) from None
        try:
            yield sock
        finally:
            sock.close()

    @staticmethod
    def _send(sock: socket.socket, message: dict) -> None:
        sock.sendall(json.dumps(message).encode() + b"\n")

    @staticmethod
    def _lines(sock: socket.socket) -> Iterator[dict]:
        stream = sock.makefile("rb")
        try:
            for raw in stream:
                yield json.loads(raw)
        except TimeoutError:
            raise NetworkError("The runtime host did not answer in time") from None
        except ValueError:
            raise ProtocolError("The runtime host sent a line that is not JSON") from None

    @staticmethod
    def _error(error: dict) -> LbctlError:
        kind = _ERRORS.get(error.get("code", ""), ProtocolError)
        return kind(error.get("message", "runtime host error"), hint=error.get("hint"), plugin=error.get("plugin"))
