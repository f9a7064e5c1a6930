"""Helpers for the dependency tests: small wheels made on the spot, the repository's deps-* plugins built with
`lbp build`, and a proxy that records every connection a process tries to make to the outside."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
LBP = Path(sys.executable).with_name("lbp")


def make_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal, valid pure-Python wheel (what pip needs to resolve and install it)."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: lbctl-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in files.items():
            archive.writestr(entry, data)
    path.write_bytes(buffer.getvalue())
    return path


def _digest(data: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=").decode()


def build_plugin(name: str, out: Path) -> Path:
    """tests/plugins/NAME built with the runtime's own `lbp build` (from a copy: lbp writes nothing into it)."""
    source = out / "src" / name
    shutil.copytree(PLUGINS / name, source, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([str(LBP), "build", "-o", str(out)], cwd=source, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob(f"lbctl-tests-{name}-*.lbpkg")
    return built


class RecordingProxy:
    """An HTTP(S) proxy that answers nothing: each connection is recorded (its first line) and closed.

    Pointing HTTP_PROXY/HTTPS_PROXY at it, with NO_PROXY for loopback, makes any request to another host fail
    and leaves a trace of it; the runtime passes these variables to pip (runtime-control-protocol.md §12).
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def env(self) -> dict[str, str]:
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
        return {**{n: self.url for n in names}, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace"))
                except OSError:
                    self.seen.append("(connection without a request line)")

    def close(self) -> None:
        self._sock.close()


BACKEND = '''\
"""A PEP 517 build backend that leaves a trace: importing it appends its environment to MARKER."""
import base64, hashlib, io, json, os, zipfile

MARKER = {marker!r}
NAME, VERSION = {name!r}, {version!r}
with open(MARKER, "a") as stream:
    stream.write(json.dumps(dict(os.environ)) + "\\n")


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module, info = NAME.replace("-", "_"), NAME.replace("-", "_") + "-" + VERSION + ".dist-info"
    files = {{module + "/__init__.py": "BUILT = True\\n",
             info + "/METADATA": "Metadata-Version: 2.1\\nName: " + NAME + "\\nVersion: " + VERSION + "\\n",
             info + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: lbctl-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}}
    digest = lambda data: base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=").decode()
    files[info + "/RECORD"] = "".join(f"{{p}},sha256={{digest(d)}},{{len(d)}}\\n" for p, d in files.items()) + info + "/RECORD,,\\n"
    filename = module + "-" + VERSION + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return filename
'''


def source_tree(directory: Path, name: str, version: str, marker: Path) -> Path:
    """A project whose build, started by anyone, appends the builder's environment to `marker`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                              'backend-path = ["."]\n')
    (directory / "backend.py").write_text(BACKEND.format(marker=str(marker), name=name, version=version))
    (directory / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return directory


def make_sdist(directory: Path, name: str, version: str, marker: Path) -> Path:
    """`source_tree` as NAME-VERSION.tar.gz in `directory` (a source distribution pip would build)."""
    import tarfile

    base = f"{name.replace('-', '_')}-{version}"
    tree = source_tree(directory / ".src" / base, name, version, marker)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(tree, arcname=base)
    shutil.rmtree(directory / ".src")
    return path


class RecordingIndex:
    """A PEP 503 index of the files in `root` on loopback that records every request line it gets.

    `RecordingIndex(None)` serves nothing: a host that must never be asked anything.
    """

    def __init__(self, root: Path | None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        index = self
        self.root, self.requests = root, []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                index.requests.append(f"{self.command} {self.path}")
                body, kind = index._answer(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            do_POST = do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, path: str) -> tuple[bytes | None, str]:
        import re

        if self.root is None:
            return None, "text/plain"
        if path.startswith("/simple/"):
            wanted = re.sub(r"[-_.]+", "-", path[len("/simple/"):].strip("/")).lower()
            links = [f'<a href="/files/{f.name}">{f.name}</a>' for f in sorted(self.root.iterdir())
                     if re.sub(r"[-_.]+", "-", f.name.split("-")[0]).lower() == wanted]
            return (f"<html><body>{''.join(links)}</body></html>".encode() if links else None), "text/html"
        if path.startswith("/files/") and (self.root / path[len("/files/"):]).is_file():
            return (self.root / path[len("/files/"):]).read_bytes(), "application/octet-stream"
        return None, "text/plain"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def store_unchecked(home: Path, plugin_id: str, data: bytes) -> Path:
    """Put a package in the environment as an older lbctl would have, without today's checks; its stored path."""
    import datetime

    from lbctl.models import Record
    from lbctl.state import Environment

    sha = hashlib.sha256(data).hexdigest()
    source = home.parent / f"{plugin_id.replace('/', '-')}.lbpkg"
    source.write_bytes(data)
    env = Environment(home)
    with env.transaction() as state:
        env.store_package(source, sha)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        state.plugins[plugin_id] = Record(plugin_id, "0.1.0", "local", sha, now)
    return env.package_path(sha)
