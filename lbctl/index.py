"""A wheelhouse served as a PEP 503 package index: pypiserver's WSGI app on a thread of this process.

pypiserver does the index (name normalisation, sha256 links, no uploads without a password file); its
fallback to PyPI is turned off, so a missing package is a 404 and never a silent download from elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import socketserver
import threading
from pathlib import Path
from typing import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lbctl.errors import NotFoundError, PreconditionError, UsageError

log = logging.getLogger("lbctl.index")


def wheel_dir(path: Path) -> Path:
    """DIR/wheels when DIR has one (what `download --with-deps` writes), else DIR itself."""
    if not path.is_dir():
        raise NotFoundError(f"No wheelhouse at {path}: not a directory",
                            hint="Make one with `lbctl deps download -d DIR`.")
    return path / "wheels" if (path / "wheels").is_dir() else path


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    served = 0
    lock = threading.Lock()


class _Handler(WSGIRequestHandler):
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        with self.server.lock:
            self.server.served += 1
        log.info("%s %s", self.client_address[0], format % args)


class IndexServer:
    def __init__(self, root: Path, host: str, port: int):
        try:
            import pypiserver
        except ImportError:
            raise PreconditionError("pypiserver is not installed", hint="Reinstall lbctl: it depends on it.") from None
        logging.getLogger("pypiserver").setLevel(logging.WARNING)  # our handler logs each request once
        app = pypiserver.app(roots=[root], disable_fallback=True, hash_algo="sha256", backend_arg="simple-dir")
        try:
            self._server: _Server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
        except OSError as exc:
            raise PreconditionError(f"Cannot serve the index on {host}:{port}: {exc.strerror or exc}") from None
        self.root, self.host = root, host
        self._thread = threading.Thread(target=self._server.serve_forever, name="lbctl-index", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/simple/"

    @property
    def served(self) -> int:
        """How many requests were answered."""
        return self._server.served

    def start(self) -> IndexServer:
        self._thread.start()
        log.info("serving %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def serving(path: Path, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[IndexServer]:
    """Serve the wheelhouse at `path` until the block ends."""
    if not 0 <= port <= 65535:
        raise UsageError(f"Invalid port {port}")
    server = IndexServer(wheel_dir(path), host, port).start()
    try:
        yield server
    finally:
        server.stop()
