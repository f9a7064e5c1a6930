"""A real LangBot 4.11.2 for tests and benchmarks (docs/langbot-http-api.md §10).

    with LangBot.start(workdir, market_url=market.url) as langbot:
        langbot.url, langbot.api_key

Its own virtualenv (`langbot==4.11.2 'sqlalchemy[asyncio]<2.1'`) is made once and reused: `LBCTL_LANGBOT_VENV`,
else `.langbot-venv` in the repository (`.ci/run` prepares it). A standalone runtime is started first on free
ports with a control token, then LangBot on a free loopback port with a global API key and `SPACE__URL`
pointing at the given marketplace. `stop()` ends both process groups, plugin workers included.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
LANGBOT_REQUIREMENTS = ("langbot==4.11.2", "sqlalchemy[asyncio]<2.1")
START_TIMEOUT = float(os.environ.get("LBCTL_LANGBOT_START_TIMEOUT", "180"))


def venv_dir() -> Path:
    return Path(os.environ.get("LBCTL_LANGBOT_VENV") or REPO / ".langbot-venv")


def ensure_venv(say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)) -> Path:
    """The LangBot virtualenv's python, created on first use (about 3 minutes, 1.6 GB): `say` is told so once."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    marker = venv / ".lbctl-ready"
    if marker.exists():
        return python
    say(f"Installing LangBot 4.11.2 for the LangBot tests into {venv} (once; about 3 minutes and 1.6 GB; "
        "LBCTL_LANGBOT_VENV names one to reuse)...")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *LANGBOT_REQUIREMENTS], check=True)
    marker.write_text(" ".join(LANGBOT_REQUIREMENTS))
    say(f"LangBot 4.11.2 installed in {time.monotonic() - started:.0f} s")
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


@dataclass
class LangBot:
    workdir: Path
    url: str
    api_key: str
    runtime_port: int
    debug_port: int
    processes: list[subprocess.Popen] = field(default_factory=list)
    runtime_argv: list[str] = field(default_factory=list)
    runtime_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, workdir: Path, *, market_url: str, api_port: int | None = None) -> LangBot:
        python = ensure_venv()
        runtime_dir = workdir / "runtime"
        runtime_dir.mkdir(parents=True, exist_ok=True)
        api_port, control_port, debug_port = api_port or free_port(), free_port(), free_port()
        token = secrets.token_urlsafe(32)
        langbot = cls(workdir, f"http://127.0.0.1:{api_port}", "lbk_" + secrets.token_urlsafe(24),
                      control_port, debug_port)
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
                    "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
                    "LANGBOT_PLUGIN_RUNTIME_CONTROL_TOKEN": token}
        langbot.runtime_argv = [str(python), "-m", "langbot_plugin.cli.__init__", "rt", "--ws-control-port",
                                str(control_port), "--ws-debug-port", str(debug_port)]
        langbot.runtime_env = base_env
        try:
            langbot.start_runtime()
            env = {**base_env, "API__HOST": "127.0.0.1", "API__PORT": str(api_port),
                   "API__WEBHOOK_PREFIX": langbot.url, "API__GLOBAL_API_KEY": langbot.api_key,
                   "PLUGIN__RUNTIME_WS_URL": f"ws://127.0.0.1:{control_port}/control/ws",
                   "PLUGIN__DISPLAY_PLUGIN_DEBUG_URL": f"ws://127.0.0.1:{debug_port}/plugin/debug/ws",
                   "SPACE__URL": market_url, "SPACE__DISABLE_TELEMETRY": "true",
                   "SPACE__DISABLE_MODELS_SERVICE": "true", "BOX__ENABLED": "false"}
            langbot._spawn([str(python), "-m", "langbot"], workdir, env, "langbot.log")
            langbot._wait(langbot.ready, "LangBot")
        except BaseException:
            langbot.stop()
            raise
        return langbot

    def start_runtime(self) -> None:
        """Start the runtime (again, after `stop_runtime`) and wait for its health route."""
        self._spawn(self.runtime_argv, self.workdir / "runtime", self.runtime_env, "runtime.log", first=True)
        self._wait(lambda: _get(f"http://127.0.0.1:{self.runtime_port}/healthz")[0] == 200, "the runtime")

    def stop_runtime(self) -> None:
        """Stop the runtime and its plugin workers: LangBot's plugin routes then answer 500."""
        runtime = self.processes.pop(0)
        _kill_group(runtime, signal.SIGTERM)
        try:
            runtime.wait(timeout=15)
        finally:
            _kill_group(runtime, signal.SIGKILL)
            runtime.wait()

    def _spawn(self, argv: list[str], cwd: Path, env: dict[str, str], log: str, first: bool = False) -> None:
        with open(self.workdir / log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes.insert(0, proc) if first else self.processes.append(proc)

    def _wait(self, check, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if check():
                return
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{what} exited with {dead[0].returncode}; see the logs in {self.workdir}")
            time.sleep(0.25)
        raise RuntimeError(f"{what} did not become ready in {START_TIMEOUT:.0f} s; see the logs in {self.workdir}")

    def ready(self) -> bool:
        """Readiness is the plugins route answering 200, not /healthz (§10.2)."""
        return _get(f"{self.url}/api/v1/plugins", {"X-API-Key": self.api_key})[0] == 200

    def api(self, path: str, *, method: str = "GET", body: dict | None = None, auth: bool = True) -> dict:
        """Call a route directly (for set-up and assertions that do not go through lbctl)."""
        headers = {"X-API-Key": self.api_key} if auth else {}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return {"status": status, **(json.loads(raw) if raw[:1] == b"{" else {"raw": raw.decode(errors="replace")})}

    def init_user(self, user: str, password: str) -> None:
        """Create the single admin (a fresh instance has none), for tests of the optional login."""
        self.api("/user/init", method="POST", body={"user": user, "password": password}, auth=False)

    def plugin_ids(self) -> list[str]:
        plugins = self.api("/plugins").get("data", {}).get("plugins", [])
        return [f"{p['manifest']['manifest']['metadata']['author']}/{p['manifest']['manifest']['metadata']['name']}"
                for p in plugins]

    def remove_all_plugins(self) -> None:
        """Delete every plugin with its data, waiting for each task (tests share one instance)."""
        for plugin_id in self.plugin_ids():
            task = self.api(f"/plugins/{plugin_id}?delete_data=true", method="DELETE").get("data", {}).get("task_id")
            deadline = time.monotonic() + 30
            while task is not None and time.monotonic() < deadline:
                if self.api(f"/system/tasks/{task}").get("data", {}).get("status") != "running":
                    break
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            _kill_group(proc, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc, signal.SIGKILL)  # plugin workers share the runtime's group
            proc.wait()
        self.processes.clear()

    def __enter__(self) -> LangBot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":  # `.ci/run` prepares the virtualenv before the tests
    print(ensure_venv())
