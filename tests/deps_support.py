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
