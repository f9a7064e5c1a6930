"""A farm of simulated LangBot 4.11.2 instances: one process, one asyncio event loop, N loopback ports.

    with FakeMarket() as market, Farm(100, market=market) as farm:
        farm.urls, farm.api_key            # one URL per instance; every instance takes the same key
        farm.preinstall(packages)          # plugins already there, as after a sync
        farm.restart(3)                    # instance 3's runtime restarts: 500, then [], then its plugins

    .venv/bin/python bench/farm.py --instances 100 [--latency 0.02] [--down 0.1] [--slow 0.1] [--failing 0.05]
        serves until Ctrl-C, with a fake marketplace of its own, and prints the targets to give lbctl

The instances speak the part of LangBot's HTTP API that lbctl uses (docs/langbot-http-api.md): the envelope
and its error forms, API-key authentication, system info/context/capabilities, the plugin list and records,
config GET/PUT with LangBot's secret masking, local and marketplace installs, upgrade, delete, and tasks as an
API key sees them. What they do and how long it takes comes from a real 4.11.2 (bench/probe_langbot.py records
it; tests/test_fleet_langbot.py runs the same lbctl commands on both and compares):

- every answer waits `latency` (20 ms) first;
- an install or upgrade prepares for `prepare_seconds` (download and checks, in parallel), then holds the
  instance's runtime for `install_seconds`: the runtime restarts one plugin at a time (its plugin worker
  policy has `max_concurrent_restarts: 1`), so three installs at once end one after another;
- a config PUT replaces the whole object (`***` under a secret-looking key keeps the stored value; with none
  stored it is a 400), then the plugin restarts: it is gone from the list and its routes answer 404 until the
  runtime has restarted it; a PUT that arrives while another PUT of the same plugin is being written answers
  500 `internal_error` (LangBot's optimistic lock: "Plugin configuration changed concurrently");
- a body that is not a JSON object stores null: the plugin vanishes for good, as on the real one;
- more than 8 running tasks: 429 `task_capacity_exceeded`;
- `restart(i)`: the plugin routes answer 500 while the runtime reconnects, then the list is `[]` for a moment,
  then the plugins come back one at a time; /healthz says meanwhile what a real one says
  (`resources.runtimes.plugin_runtime_connected` and `plugin_installations`, the plugins LangBot holds).

Shares of the instances can be down (the port refuses connections), slow (every answer comes after
`slow_seconds`, 30 s) or failing (the plugin routes answer 500 `internal_error`, as when LangBot's runtime is
not connected). Marketplace installs take their packages from a FakeMarket (tests/fakemarket.py) in the same
process, the marketplace every instance names as its `cloud_service_url`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import io
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from fakemarket import FakeMarket  # noqa: E402

API = "/api/v1"
VERSION = "v4.11.2"
MAX_ACTIVE_TASKS = 8  # system.task_retention.max_active_user_tasks_per_workspace
KEPT_TASKS = 200  # system.task_retention.completed_limit
MASK = "***"
PLUGIN_OPERATIONS = ("plugin.config.get", "plugin.config.update", "plugin.delete", "plugin.get",
                     "plugin.install.github", "plugin.install.local", "plugin.install.marketplace", "plugin.list",
                     "plugin.logs", "plugin.upgrade", "task.get", "task.list", "pipeline.run")
PERMISSIONS = ("api_key.manage", "audit.view", "resource.manage", "resource.view", "runtime.operate",
               "workspace.update", "workspace.view")
NOT_FOUND_PAGE = (b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
                  b"<p>The requested URL was not found on the server.</p>\n")
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class FarmOptions:
    latency: float = 0.02
    prepare_seconds: float = 0.1  # an install's download and checks, before the runtime is involved
    install_seconds: float = 0.8  # the runtime restarting the plugin: one at a time per instance
    delete_seconds: float = 0.13
    down: float = 0.0  # shares of the instances
    slow: float = 0.0
    failing: float = 0.0
    slow_seconds: float = 30.0
    api_key: str = "lbk_farm_key"
    seed: int = 0


# --- LangBot's secret masking (docs/langbot-http-api.md §5.3) -------------------------------------------------

_SECRET_NAMES = {"api_key", "apikey", "auth", "authorization", "cookie", "credentials", "database_url", "dsn", "key",
                 "proxy_authorization", "set_cookie"}
_SECRET_TOKENS = {"credential", "credentials", "passwd", "password", "secret", "token"}
_KEY_QUALIFIERS = {"access", "api", "auth", "bearer", "client", "debug", "encryption", "private", "signing"}


def sensitive(key: Any) -> bool:
    normalized = re.sub(r"[^a-zA-Z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key or "")))
    normalized = normalized.strip("_").lower()
    tokens = {t for t in normalized.split("_") if t}
    return normalized in _SECRET_NAMES or bool(tokens & _SECRET_TOKENS) or ("key" in tokens and bool(
        tokens & _KEY_QUALIFIERS))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value if value is None or value == "" else MASK


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) if sensitive(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


_MISSING = object()


def restore(value: Any, current: Any = _MISSING, secret: bool = False) -> Any:
    """`***` at or below a secret key becomes the stored value at the same path (ValueError when none is)."""
    if secret and value == MASK:
        if current is _MISSING:
            raise ValueError("Masked plugin secret has no existing value")
        return copy.deepcopy(current)
    if isinstance(value, dict):
        stored = current if isinstance(current, dict) else {}
        return {k: restore(v, stored.get(k, _MISSING), secret or sensitive(k)) for k, v in value.items()}
    if isinstance(value, list):
        stored = current if isinstance(current, list) else []
        return [restore(v, stored[i] if i < len(stored) else _MISSING, secret) for i, v in enumerate(value)]
    return value


# --- packages ---------------------------------------------------------------------------------------------------


class PackageError(Exception):
    """The reason a real LangBot's task gives for a package it refuses."""


@dataclass(frozen=True)
class Package:
    sha256: str
    author: str
    name: str
    version: str
    manifest: dict
    components: tuple[dict, ...]

    @property
    def id(self) -> str:
        return f"{self.author}/{self.name}"


_packages: dict[str, Package] = {}
_packages_lock = threading.Lock()


def read_package(data: bytes) -> Package:
    """The package as LangBot lists it (manifest and component manifests), parsed once per sha256."""
    sha = hashlib.sha256(data).hexdigest()
    with _packages_lock:
        if sha in _packages:
            return _packages[sha]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        manifest = yaml.load(archive.read("manifest.yaml"), Loader=Loader)
    except (zipfile.BadZipFile, KeyError, yaml.YAMLError):
        raise PackageError("archive has no valid ZIP end-of-central-directory record") from None
    metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(metadata.get(k), str) and metadata[k]
                                                 for k in ("author", "name")):
        raise PackageError("Plugin package manifest identity is missing")
    if not isinstance(metadata.get("version"), str):
        raise PackageError("Invalid plugin version")
    plugin_id = f"{metadata['author']}/{metadata['name']}"
    spec = manifest.setdefault("spec", {}) if isinstance(manifest.get("spec"), dict) or "spec" not in manifest \
        else {}
    spec.setdefault("pages", [])
    components = []
    for kind in (spec.get("components") or {}).values():
        for entry in (kind or {}).get("fromDirs") or []:
            prefix = str(entry.get("path", "")).strip("/") + "/"
            for name in archive.namelist():
                if name.startswith(prefix) and name.endswith((".yaml", ".yml")) and "/" not in name[len(prefix):]:
                    components.append({"component_config": {}, "component_instance": None, "manifest": {
                        "manifest": yaml.load(archive.read(name), Loader=Loader), "owner": plugin_id,
                        "rel_path": name}})
    package = Package(sha, metadata["author"], metadata["name"], metadata["version"],
                      {"manifest": manifest, "owner": "builtin", "rel_path": "manifest.yaml"}, tuple(components))
    with _packages_lock:
        _packages[sha] = package
    return package


def _certification(sha: str) -> dict:
    return {"admission_code": "CERTIFIED_PLUGIN_OSS_LEGACY_DEDICATED", "artifact_digest": sha,
            "certificate_component_model": None, "certificate_id": None, "certificate_runtime_profile": None,
            "normalized_digest": sha, "runtime_profile": "dedicated", "verification": "absent"}


# --- one instance -----------------------------------------------------------------------------------------------


@dataclass
class Plugin:
    package: Package
    source: str
    order: int  # newest install first in the list
    config: Any = field(default_factory=dict)
    revision: int = 1
    restarting: bool = False
    bricked: bool = False

    def container(self) -> dict:
        return json.loads(self.encoded())

    def encoded(self) -> bytes:
        """The plugin as GET /plugins lists it, encoded once per package and source for the whole farm (a
        thousand instances list the same plugins)."""
        key = (self.package.sha256, self.source)
        found = _containers.get(key)
        if found is None:
            info: dict[str, Any] = {"_artifact_storage": "tenant_binary_storage_v1",
                                    "_certification": _certification(self.package.sha256)}
            if self.source == "marketplace":
                info.update(plugin_author=self.package.author, plugin_name=self.package.name,
                            plugin_version=self.package.version)
            else:
                info["administrator_force"] = False
            found = _containers[key] = json.dumps(redact({
                "components": list(self.package.components), "debug": False, "enabled": True, "install_info": info,
                "install_source": self.source, "manifest": self.package.manifest, "plugin_config": {},
                "plugin_instance": None, "priority": 0, "status": "initialized"})).encode()
        return found


_containers: dict[tuple[str, str], bytes] = {}


@dataclass
class Task:
    id: int
    created_at: float
    status: str = "running"
    result: Any = None
    reason: str | None = None  # what a JWT caller would read; an API key never sees it

    def public(self) -> dict:
        error = {"message": "Task execution failed", "type": "task_failed"} if self.status == "failed" else None
        return {"created_at": self.created_at, "error": error, "id": self.id, "kind": "plugin-operation",
                "result": self.result, "status": self.status, "task_type": "user"}


class Instance:
    def __init__(self, farm: Farm, index: int, mode: str):
        self.farm, self.index, self.mode = farm, index, mode
        self.port = 0
        self.plugins: dict[str, Plugin] = {}
        self.tasks: dict[int, Task] = {}
        self.next_task = 12  # ids restart at 12 after every LangBot start
        self.order = 0
        self.runtime: asyncio.Lock | None = None  # made on the loop
        self.unavailable_until = 0.0  # after restart(): plugin routes answer 500, then the list fills up again
        self.connecting_until = 0.0  # after restart(): the runtime is back but LangBot still replays ([] listed)
        self.hidden_until: dict[str, float] = {}
        self.requests = 0
        self.in_flight = 0
        self._listing: bytes | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def changed(self) -> None:
        self._listing = None

    def visible(self) -> list[Plugin]:
        now = time.monotonic()
        shown = [p for p in self.plugins.values() if not p.restarting and not p.bricked
                 and self.hidden_until.get(p.package.id, 0) <= now]
        return sorted(shown, key=lambda p: -p.order)

    def listing(self) -> bytes:
        if self._listing is not None:
            return self._listing
        listing = b'{"code": 0, "data": {"plugins": [' + b", ".join(p.encoded() for p in self.visible()) + \
            b']}, "msg": "ok"}'
        if not (self.hidden_until and max(self.hidden_until.values()) > time.monotonic()):
            self._listing = listing  # while plugins come back after a restart the list changes by itself
        return listing

    def health(self) -> dict:
        """GET /healthz: LangBot's runtime resources, which say whether its runtime is connected and how many
        installations LangBot holds (more than the plugins listed while they come back after a restart)."""
        now = time.monotonic()
        held = sum(not p.bricked for p in self.plugins.values())
        connected = self.mode != "failing" and now >= self.connecting_until
        return {"code": 0, "msg": "ok", "resources": {"runtimes": {
            "plugins": len(self.visible()) if connected else 0, "plugin_installations": held,
            "plugin_runtime_connected": connected}}}

    def plugin(self, plugin_id: str) -> Plugin | None:
        found = self.plugins.get(plugin_id)
        if found is None or found.restarting or found.bricked or self.hidden_until.get(plugin_id, 0) > time.monotonic():
            return None
        return found

    def put(self, package: Package, source: str) -> None:
        """Install or reinstall: config kept, provenance replaced (last writer wins)."""
        old = self.plugins.get(package.id)
        self.order += 1
        config = old.config if old is not None and not old.bricked else {}
        self.plugins[package.id] = Plugin(package, source, self.order, config, (old.revision + 1) if old else 1)
        self.changed()

    def task(self, work: Callable[[Task], Any]) -> Task:
        task = Task(self.next_task, time.time())
        self.next_task += 1
        self.tasks[task.id] = task
        finished = [t for t in self.tasks.values() if t.status != "running"]
        for old in finished[: max(0, len(finished) - KEPT_TASKS)]:
            del self.tasks[old.id]
        asyncio.get_running_loop().create_task(self._run(task, work))
        return task

    async def _run(self, task: Task, work: Callable[[Task], Any]) -> None:
        try:
            task.result = await work(task)
            task.status = "succeeded"
        except TaskFailed as exc:
            task.status, task.reason = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a farm bug shows as a failed task, with its reason
            task.status, task.reason = "failed", f"{type(exc).__name__}: {exc}"

    def running(self) -> int:
        return sum(t.status == "running" for t in self.tasks.values())

    async def install(self, package: Package, source: str) -> None:
        opts = self.farm.options
        await asyncio.sleep(opts.prepare_seconds)
        assert self.runtime is not None
        async with self.runtime:  # max_concurrent_restarts: 1
            await asyncio.sleep(opts.install_seconds)
            self.put(package, source)

    async def restart_plugin(self, plugin: Plugin) -> None:
        assert self.runtime is not None
        plugin.restarting = True
        self.changed()
        try:
            async with self.runtime:
                await asyncio.sleep(self.farm.options.install_seconds)
        finally:
            plugin.restarting = False
            self.changed()


class TaskFailed(Exception):
    pass


def _ok(data: Any) -> bytes:
    return json.dumps({"code": 0, "data": data, "msg": "ok"}).encode()


def _error(code: Any, msg: str, **extra: Any) -> bytes:
    return json.dumps({"code": code, "msg": msg, **extra}).encode()


def _internal() -> tuple[int, bytes]:
    return 500, _error("internal_error", "Internal server error", request_id=str(uuid.uuid4()))


# --- the farm ---------------------------------------------------------------------------------------------------


class Farm:
    """N simulated LangBot instances on one event loop in a background thread (see the module's docstring)."""

    def __init__(self, instances: int, *, market: FakeMarket | None = None, options: FarmOptions | None = None,
                 **overrides: Any):
        self.options = options or FarmOptions(**overrides)
        self.market = market
        modes = self._modes(instances)
        self.instances = [Instance(self, i, modes[i]) for i in range(instances)]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[Any] = []
        self._reserved: list[socket.socket] = []
        self.log: list[tuple[int, str, str, float]] | None = None  # (instance, method, path, time) when recording
        self.connections = 0  # open now
        self.max_connections = 0
        self.in_flight = 0  # requests being answered now, on all instances
        self.max_in_flight = 0
        self.busy: set[int] = set()  # instances answering a request now
        self.max_busy = 0  # the most instances answering at once: how many targets a client works on at once

    def _modes(self, count: int) -> list[str]:
        order = list(range(count))
        random.Random(self.options.seed).shuffle(order)
        modes = ["up"] * count
        start = 0
        for mode in ("down", "slow", "failing"):
            share = round(getattr(self.options, mode) * count)
            for index in order[start:start + share]:
                modes[index] = mode
            start += share
        return modes

    @property
    def urls(self) -> list[str]:
        return [i.url for i in self.instances]

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def up(self) -> list[Instance]:
        return [i for i in self.instances if i.mode == "up"]

    def record(self) -> list[tuple[int, str, str, float]]:
        """Start keeping every request as (instance, method, path, monotonic time)."""
        self.log = []
        return self.log

    # --- life ---------------------------------------------------------------------------------------------------
    def start(self) -> Farm:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="langbot-farm", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _listen(self) -> None:
        for instance in self.instances:
            instance.runtime = asyncio.Lock()
            if instance.mode == "down":  # a bound port that does not listen refuses every connection
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                self._reserved.append(sock)
                instance.port = sock.getsockname()[1]
                continue
            server = await asyncio.start_server(lambda r, w, i=instance: self._connection(i, r, w), "127.0.0.1", 0,
                                                backlog=512)
            instance.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()
        await asyncio.sleep(0)

    def close(self) -> None:
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        for sock in self._reserved:
            sock.close()
        self.loop = self._thread = None

    def __enter__(self) -> Farm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the farm's loop (state belongs to it) and return its result."""
        if self.loop is None:
            return fn()

        async def wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=30)

    # --- set-up and inspection ------------------------------------------------------------------------------------
    def preinstall(self, packages: list[bytes], *, source: str = "marketplace",
                   instances: list[int] | None = None, config: dict[str, dict] | None = None) -> None:
        """Put plugins in place at once (as a finished sync would have), on every instance or the ones given."""
        parsed = [read_package(data) for data in packages]

        def put() -> None:
            for index in instances if instances is not None else range(len(self.instances)):
                instance = self.instances[index]
                for package in parsed:
                    instance.put(package, source)
                    if config and package.id in config:
                        instance.plugins[package.id].config = copy.deepcopy(config[package.id])
                instance.listing()

        self.call(put)

    def restart(self, index: int, *, unavailable: float = 1.3, empty: float = 3.7, per_plugin: float = 2.0) -> None:
        """The instance's runtime restarts: plugin routes answer 500 for `unavailable` s, the list is [] for
        `empty` s more, then the plugins come back one every `per_plugin` s (bench/probe_langbot.py saw 1.3, 2.5
        and about 2 s)."""

        def restart() -> None:
            instance = self.instances[index]
            now = time.monotonic()
            instance.unavailable_until = now + unavailable
            instance.connecting_until = now + unavailable + empty / 2
            for k, plugin in enumerate(sorted(instance.plugins.values(), key=lambda p: p.order)):
                instance.hidden_until[plugin.package.id] = now + unavailable + empty + k * per_plugin
            instance.next_task = 12
            instance.tasks.clear()
            instance.changed()

        self.call(restart)

    def plugin_ids(self, index: int) -> list[str]:
        return self.call(lambda: [p.package.id for p in self.instances[index].visible()])

    def versions(self, index: int) -> dict[str, str]:
        return self.call(lambda: {p.package.id: p.package.version for p in self.instances[index].visible()})

    def config(self, index: int, plugin_id: str) -> Any:
        return self.call(lambda: copy.deepcopy(self.instances[index].plugins[plugin_id].config))

    def requests(self) -> int:
        return sum(i.requests for i in self.instances)

    # --- HTTP -------------------------------------------------------------------------------------------------------
    async def _connection(self, instance: Instance, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.max_connections = max(self.max_connections, self.connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                self._begin(instance)
                try:
                    status, content_type, payload = await self._answer(instance, method, target, headers, body)
                finally:
                    self._end(instance)
                keep = headers.get("connection", "").lower() != "close"
                reason = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 404: "NOT FOUND",
                          405: "METHOD NOT ALLOWED", 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR"}
                writer.write(f"HTTP/1.1 {status} {reason.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
                             f"Content-Length: {len(payload)}\r\nServer: hypercorn-h11\r\n"
                             f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode() + payload)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.connections -= 1
            writer.close()

    def _begin(self, instance: Instance) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        instance.in_flight += 1
        self.busy.add(instance.index)
        self.max_busy = max(self.max_busy, len(self.busy))

    def _end(self, instance: Instance) -> None:
        self.in_flight -= 1
        instance.in_flight -= 1
        if not instance.in_flight:
            self.busy.discard(instance.index)

    async def _answer(self, instance: Instance, method: str, target: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, str, bytes]:
        instance.requests += 1
        url = urlsplit(target)
        path = unquote(url.path)
        if self.log is not None:
            self.log.append((instance.index, method, path, time.monotonic()))
        json_type = "application/json"
        if self.options.latency:
            await asyncio.sleep(self.options.latency)
        if instance.mode == "slow":
            await asyncio.sleep(self.options.slow_seconds)
        if not path.startswith(API + "/"):
            if path == "/healthz":
                return 200, json_type, json.dumps(instance.health()).encode()
            return 404, "text/html", NOT_FOUND_PAGE
        route = path[len(API):]
        if method == "GET" and route == "/system/info":
            return 200, json_type, _ok(self._info())
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not key:
            return 401, json_type, _error(-1, "No valid authentication provided (user token or API key required)")
        if key != self.options.api_key:
            return 401, json_type, _error("invalid_authentication", "Invalid authentication credentials")
        try:
            status, payload = await Routes(self, instance, method, route, parse_qs(url.query), headers, body).go()
        except _NoRoute as exc:
            return exc.status, "text/html", NOT_FOUND_PAGE
        return status, json_type, payload

    def _info(self) -> dict:
        market = self.market.url if self.market is not None else "https://space.langbot.app"
        return {"allow_modify_login_info": True, "beta": False, "cloud_banner": None, "cloud_service_url": market,
                "debug": False, "deployment_mode": "oss", "disable_models_service": True, "edition": "community",
                "enable_marketplace": True, "invitation_delivery": {"enabled": False, "provider": None},
                "limitation": {"max_bots": -1, "max_extensions": -1, "max_knowledge_bases": -1,
                               "max_pipelines": -1},
                "mcp_stdio_enabled": True, "outbound_ips": [], "version": VERSION, "wizard_progress": None,
                "wizard_status": "none"}


class _NoRoute(Exception):
    def __init__(self, status: int = 404):
        self.status = status


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


def _multipart_file(headers: dict[str, str], body: bytes) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', headers.get("content-type", ""))
    if not match:
        return None
    for part in body.split(b"--" + match.group(1).encode()):
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return data[:-2] if data.endswith(b"\r\n") else data
    return None


class Routes:
    """One request to /api/v1 after authentication."""

    def __init__(self, farm: Farm, instance: Instance, method: str, route: str, query: dict, headers: dict,
                 body: bytes):
        self.farm, self.instance, self.method, self.route = farm, instance, method, route
        self.query, self.headers, self.body = query, headers, body

    async def go(self) -> tuple[int, bytes]:
        parts = self.route.strip("/").split("/")
        if parts[0] == "system":
            return self.system(parts[1:])
        if parts[0] != "plugins":
            raise _NoRoute()
        if self.instance.mode == "failing" or time.monotonic() < self.instance.unavailable_until:
            return _internal()  # every plugin route while the runtime is not connected
        return await self.plugins(parts[1:])

    def system(self, parts: list[str]) -> tuple[int, bytes]:
        if self.method != "GET":
            raise _NoRoute(405)
        if parts == ["context"]:
            uid = f"{self.instance.index:08x}-0000-4000-8000-000000000000"
            return 200, _ok({"api_key_id": "global-oss-api-key", "instance_uuid": f"instance_{uid}",
                             "permissions": list(PERMISSIONS), "workspace_uuid": uid})
        if parts == ["capabilities"]:
            return 200, _ok({"operations": {op: {"supported": True} for op in PLUGIN_OPERATIONS},
                             "schema_version": 1})
        if parts == ["tasks"]:
            return 200, _ok({"tasks": [t.public() for t in self.instance.tasks.values()]})
        if len(parts) == 2 and parts[0] == "tasks":
            task = self.instance.tasks.get(int(parts[1])) if parts[1].isdigit() else None
            if task is None:
                return 404, _error(404, "Task not found")
            return 200, _ok(task.public())
        raise _NoRoute()

    async def plugins(self, parts: list[str]) -> tuple[int, bytes]:
        instance = self.instance
        if parts == [""] or parts == []:
            if self.method != "GET":
                raise _NoRoute(405)
            return 200, instance.listing()
        if parts[0] == "install" and len(parts) == 2 and self.method == "POST":
            return self.install(parts[1])
        if len(parts) < 2:
            raise _NoRoute()
        plugin_id, rest = f"{parts[0]}/{parts[1]}", parts[2:]
        if rest == [] and self.method == "GET":
            plugin = instance.plugin(plugin_id)
            if plugin is None:
                return 404, _error(-1, "plugin not found")
            return 200, b'{"code": 0, "data": {"plugin": ' + plugin.encoded() + b'}, "msg": "ok"}'
        if rest == [] and self.method == "DELETE":
            return self.start(lambda task: self.delete(plugin_id))
        if rest == ["upgrade"] and self.method == "POST":
            return self.start(lambda task: self.upgrade(plugin_id))
        if rest == ["config"] and self.method == "GET":
            plugin = instance.plugin(plugin_id)
            return (200, _ok({"config": redact(plugin.config)})) if plugin else (404, _error(-1, "plugin not found"))
        if rest == ["config"] and self.method == "PUT":
            return await self.put_config(plugin_id)
        if rest in (["logs"], ["readme"]) and self.method == "GET":
            if instance.plugin(plugin_id) is None:
                return 404, _error(-1, "plugin not found")
            return 200, _ok({"logs": []} if rest == ["logs"] else {"readme": f"# {parts[1]}\n"})
        raise _NoRoute(405 if rest in ([], ["config"], ["upgrade"]) else 404)

    def start(self, work: Callable[[Task], Any]) -> tuple[int, bytes]:
        if self.instance.running() >= MAX_ACTIVE_TASKS:
            return 429, _error("task_capacity_exceeded", "Too many running tasks")
        return 200, _ok({"task_id": self.instance.task(work).id})

    def install(self, how: str) -> tuple[int, bytes]:
        if how == "local":
            data = _multipart_file(self.headers, self.body)
            if data is None:
                return 400, _error(-1, "file is required")
            return self.start(lambda task: self.install_bytes(data, "local"))
        if how == "marketplace":
            try:
                body = json.loads(self.body)
            except ValueError:
                return 400, _error(-1, "Invalid request parameters")
            if not isinstance(body, dict):
                return 400, _error(-1, "Invalid request parameters")
            author, name = str(body.get("plugin_author", "")), str(body.get("plugin_name", ""))
            version = body.get("plugin_version")
            return self.start(lambda task: self.install_marketplace(author, name, version))
        raise _NoRoute()

    async def install_bytes(self, data: bytes, source: str) -> None:
        try:
            package = read_package(data)
        except PackageError as exc:
            await asyncio.sleep(self.farm.options.prepare_seconds)
            raise TaskFailed(str(exc)) from None
        await self.instance.install(package, source)

    async def install_marketplace(self, author: str, name: str, version: str | None) -> None:
        market = self.farm.market
        listing = market.listing(f"{author}/{name}") if market is not None else None
        if listing is None or not listing.releases:
            await asyncio.sleep(self.farm.options.prepare_seconds)
            raise TaskFailed("All connection attempts failed" if market is None else "Plugin not found")
        data = listing.release(version) if version else listing.releases[-1][1]
        if data is None:
            await asyncio.sleep(self.farm.options.prepare_seconds)
            raise TaskFailed("The requested plugin version is not available")
        package = read_package(data)
        if package.id != f"{author}/{name}":
            raise TaskFailed("Plugin package author does not match the requested plugin")
        await self.instance.install(package, "marketplace")

    async def upgrade(self, plugin_id: str) -> dict:
        plugin = self.instance.plugins.get(plugin_id)
        if plugin is None:
            raise TaskFailed(f"Plugin {plugin_id} is not installed in this Workspace")
        if plugin.source != "marketplace":
            raise TaskFailed(f"Plugin {plugin_id} is not installed from marketplace")
        await self.install_marketplace(plugin.package.author, plugin.package.name, None)  # always versions[0]
        return {}

    async def delete(self, plugin_id: str) -> dict:
        await asyncio.sleep(self.farm.options.delete_seconds)
        if self.instance.plugins.pop(plugin_id, None) is None:  # its config goes with it
            raise TaskFailed(f"Plugin {plugin_id} is not installed in this Workspace")
        self.instance.changed()
        return {}

    async def put_config(self, plugin_id: str) -> tuple[int, bytes]:
        plugin = self.instance.plugin(plugin_id)
        if plugin is None:
            return 404, _error(-1, "plugin not found")
        revision = plugin.revision
        try:
            values = json.loads(self.body) if "json" in self.headers.get("content-type", "") else None
        except ValueError:
            values = None
        if not isinstance(values, dict):
            plugin.config, plugin.bricked = None, True  # 200, null stored: the plugin crash-loops and vanishes
            self.instance.changed()
            return 200, _ok({})
        try:
            values = restore(values, plugin.config)
        except ValueError as exc:
            return 400, _error(-1, str(exc))
        await asyncio.sleep(self.farm.options.latency)  # LangBot's read-modify-write of the database row
        if plugin.revision != revision or plugin.restarting:
            return _internal()  # "Plugin configuration changed concurrently"
        plugin.config, plugin.revision = values, revision + 1
        asyncio.get_running_loop().create_task(self.instance.restart_plugin(plugin))
        return 200, _ok({})


# --- the command line -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--latency", type=float, default=FarmOptions.latency)
    parser.add_argument("--install-seconds", type=float, default=FarmOptions.install_seconds)
    parser.add_argument("--down", type=float, default=0.0, help="share of instances that refuse connections")
    parser.add_argument("--slow", type=float, default=0.0, help="share that answer after --slow-seconds")
    parser.add_argument("--slow-seconds", type=float, default=FarmOptions.slow_seconds)
    parser.add_argument("--failing", type=float, default=0.0, help="share whose plugin routes answer 500")
    parser.add_argument("--plugins", type=int, default=5, help="plugins published on the farm's marketplace")
    args = parser.parse_args()
    from pkgfactory import make_lbpkg

    with FakeMarket() as market:
        for i in range(args.plugins):
            market.add(make_lbpkg("farm", f"plugin-{i}", "1.0.0", config=[]))
        options = FarmOptions(latency=args.latency, install_seconds=args.install_seconds, down=args.down,
                              slow=args.slow, slow_seconds=args.slow_seconds, failing=args.failing)
        with Farm(args.instances, market=market, options=options) as farm:
            print(f"{len(farm.instances)} LangBot instances ({', '.join(f'{m}: {sum(i.mode == m for i in farm.instances)}' for m in ('up', 'down', 'slow', 'failing'))}); "
                  f"marketplace {market.url} with farm/plugin-0 … farm/plugin-{args.plugins - 1} 1.0.0", file=sys.stderr)
            print(f"export LBCTL_API_KEY={farm.api_key}")
            print(f"export LBCTL_TARGET={','.join(farm.urls)}")
            sys.stdout.flush()
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
