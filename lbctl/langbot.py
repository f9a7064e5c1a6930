"""LangBotClient: the plugin routes of LangBot's HTTP API (docs/langbot-http-api.md) over an injected httpx.Client.

Every answer is checked against LangBot's envelope; every failure becomes the LbctlError of spec §8:
no or rejected key 3, plugin not found 5, runtime not connected / no API / busy 6, network 7, not LangBot's
JSON (an HTML page, say) 8.

What LangBot 4.11.2 cannot take in parallel: a config write (`set_plugin_config`) bumps the plugin's
`runtime_revision` and registers its new binding without the state lock that guards installs and the
reconciliation every plugin route runs first. Any plugin request racing it can then fail with a plain 500
("Cannot register a stale plugin installation binding", "binding cannot change generation"), and two config
writes race each other the same way. So a config write here takes the plugin routes alone (one at a time, no
other plugin request of this client in flight), and a read that gets a 500 or a 429 is asked again with
backoff: for up to BUSY_WINDOW seconds (a 500 that lasts longer is the runtime being gone) and, for a 429,
within the timeout. Installs and deletes may overlap: LangBot serialises their bookkeeping itself.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Final, Iterator

import httpx

from lbctl.configschema import nesting
from lbctl.errors import (CredentialsError, InvalidSpecError, LbctlError, NetworkError, NotFoundError,
                          PreconditionError, ProtocolError)
from lbctl.http import USER_AGENT, RetryingClient, TooLarge, describe_timeout, interrupted, read_limited, timeouts

API: Final = "/api/v1"
MAX_JSON_BYTES: Final = 4 * 1024 * 1024
MAX_NESTING: Final = 100  # config values nest 64 levels at most (configschema), a manifest's below ~8 more
POLL_BUDGET: Final = 200.0  # task polls a second, in all, while waiting on many instances at once
RUNTIME_HINT: Final = "Check that LangBot's plugin runtime is up and connected (`lbctl doctor --target …`)."
BUSY_WINDOW: Final = 8.0  # seconds a 500 is taken for LangBot being busy rather than its runtime being gone
MAX_DELAY: Final = 1.0
Classifier = Callable[[int, Any, str], "LbctlError | None"]  # (status, code, msg) -> the error, or None


class NoApiError(PreconditionError):
    code = "no_api"


class BusyError(PreconditionError):
    """429: LangBot refused to start the work (too many tasks); nothing was done."""

    code = "busy"


class ServerError(PreconditionError):
    """500: LangBot failed while handling the request; whether a change was made must be read back."""


class LinkError(NetworkError):
    """The connection to LangBot failed: cut, timed out, or never made."""


class UnreachableError(LinkError):
    """The connection could not be made: the request never reached LangBot."""


class RefusedError(PreconditionError):
    """LangBot turned a request down (4xx) before acting on it."""


class TaskTimeoutError(NetworkError):
    """LangBot had not finished a task when lbctl stopped waiting for it (the task may still finish)."""


def refused(exc: LbctlError) -> bool:
    """Whether a request that failed with `exc` certainly changed nothing: it never reached LangBot, or LangBot
    turned it down before acting (authentication, a missing plugin or route, 429, another 4xx)."""
    return isinstance(exc, (UnreachableError, CredentialsError, NotFoundError, InvalidSpecError, BusyError,
                            NoApiError, RefusedError))


def transient(exc: LbctlError) -> bool:
    """An answer worth asking again: LangBot busy (429) or failing while busy (500)."""
    return isinstance(exc, (BusyError, ServerError))


class Gate:
    """Requests to the plugin routes share the gate; a config write holds it alone (see the module's docstring).
    Writers go first: a config write waits only for the requests already in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = self._waiting = 0
        self._writing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class _Waiting:
    """How many LangBot instances this process waits on right now: their task polls share POLL_BUDGET."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self, change: int) -> None:
        with self._lock:
            self._count += change

    def interval(self, elapsed: float) -> float:
        with self._lock:
            return max(0.1 if elapsed < 5 else 0.5, self._count / POLL_BUDGET)


_waiting = _Waiting()


class LangBotClient:
    def __init__(self, http: httpx.Client, *, where: str, timeout: float = 60.0):
        self._http = http
        self.where = where  # "LangBot at URL", for messages
        self.timeout = timeout  # --timeout: how long a 429 is asked again
        self.gate = Gate()
        self._watch = threading.Condition()
        self._waits: dict[int, dict | None] = {}  # task id -> its last answer, for each wait in progress
        self._polling = False
        self._list_route = True

    def close(self) -> None:
        self._http.close()

    # --- discovery -------------------------------------------------------------------------------
    def info(self) -> dict:
        return self._json("GET", "/system/info")

    def context(self) -> dict:
        return self._json("GET", "/system/context")

    def capabilities(self) -> dict:
        return self._json("GET", "/system/capabilities")

    # --- plugins ---------------------------------------------------------------------------------
    def plugins(self, *, retry: bool = True) -> list[dict]:
        plugins = self._json("GET", "/plugins", retry=retry).get("plugins")
        if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
            raise self._protocol("GET /plugins", "data.plugins is not a list of objects")
        return plugins

    def config(self, plugin_id: str) -> dict:
        config = self._json("GET", f"/plugins/{plugin_id}/config", classify=_plugin_missing(plugin_id)).get("config")
        if config is None:
            return {}
        if not isinstance(config, dict):
            raise self._protocol(f"GET /plugins/{plugin_id}/config", "data.config is not an object")
        return config

    def put_config(self, plugin_id: str, values: dict) -> None:
        # Anything but a JSON object makes LangBot store null and brick the plugin (§10.3): never send it.
        if not isinstance(values, dict):
            raise TypeError("a plugin config must be a JSON object")
        self._json("PUT", f"/plugins/{plugin_id}/config", json=values, classify=_plugin_missing(plugin_id), alone=True)

    def install_local(self, path: Path) -> int:
        with open(path, "rb") as stream:
            files = {"file": (path.name if path.suffix == ".lbpkg" else "plugin.lbpkg", stream,
                              "application/octet-stream")}
            return self._task("POST", "/plugins/install/local", files=files)

    def install_marketplace(self, author: str, name: str, version: str) -> int:
        body = {"plugin_author": author, "plugin_name": name, "plugin_version": version}
        return self._task("POST", "/plugins/install/marketplace", json=body)

    def delete(self, plugin_id: str, *, delete_data: bool) -> int:
        return self._task("DELETE", f"/plugins/{plugin_id}?delete_data={'true' if delete_data else 'false'}")

    def logs(self, plugin_id: str, limit: int) -> list:
        logs = self._json("GET", f"/plugins/{plugin_id}/logs?limit={limit}", classify=_plugin_missing(plugin_id))
        return logs.get("logs") if isinstance(logs.get("logs"), list) else []

    def upload_config_file(self, name: str, data: bytes, mimetype: str) -> str:
        answer = self._json("POST", "/plugins/config-files", files={"file": (name, data, mimetype)})
        if not isinstance(answer.get("file_key"), str):
            raise self._protocol("POST /plugins/config-files", "data.file_key is missing")
        return answer["file_key"]

    def pipelines(self) -> list[dict]:
        pipelines = self._json("GET", "/pipelines").get("pipelines")
        return [p for p in pipelines if isinstance(p, dict)] if isinstance(pipelines, list) else []

    def run_pipeline(self, uuid: str, message: str) -> dict:
        return self._json("POST", f"/pipelines/{uuid}/run", json={"message": message},
                          classify=lambda status, code, msg: NotFoundError(f"No pipeline {uuid} on {self.where}")
                          if status == 404 else None)

    # --- tasks -----------------------------------------------------------------------------------
    def task(self, task_id: int) -> dict:
        return self._json("GET", f"/system/tasks/{task_id}")

    def tasks(self) -> list[dict]:
        """Every plugin task LangBot still keeps (the last 200 finished ones and those running)."""
        tasks = self._json("GET", "/system/tasks?type=user&kind=plugin-operation").get("tasks")
        if not isinstance(tasks, list):
            raise self._protocol("GET /system/tasks", "data.tasks is not a list")
        return [t for t in tasks if isinstance(t, dict)]

    def wait(self, task_id: int, *, deadline: float | Callable[[], float]) -> dict:
        """Poll a task until it is no longer running: every 0.1 s for its first seconds (an install without
        dependencies takes about one), then every 0.5 s; TaskTimeoutError when `deadline` (monotonic, or a
        function giving it: it may come closer while waiting) passes.

        The waits on one instance share their polls: one thread asks for all of them (GET /system/tasks when
        there are several), the others take its news. And the interval grows with the number of instances
        waited on at once, so that a fleet polls about POLL_BUDGET times a second in all: 100 instances
        installing 4 plugins each would otherwise be 4,000 requests a second."""
        started = time.monotonic()
        until = deadline if callable(deadline) else lambda: deadline
        with self._watch:
            if not self._waits:
                _waiting.add(1)
            self._waits[task_id] = None
        try:
            while True:
                with self._watch:
                    while self._polling:
                        self._watch.wait(timeout=max(0.0, until() - time.monotonic()))
                        if time.monotonic() >= until():
                            raise self._late(task_id)
                    task = self._waits[task_id]
                    if task is not None and task.get("status") != "running":
                        return task
                    self._polling = True
                    ids = list(self._waits)
                news: dict[int, dict] = {}
                try:
                    if task is not None:  # polled before: wait first
                        delay = _waiting.interval(time.monotonic() - started)
                        if time.monotonic() + delay > until():
                            raise self._late(task_id)
                        time.sleep(delay)
                    news = self._poll(ids)
                finally:
                    with self._watch:
                        self._polling = False
                        self._waits.update((i, t) for i, t in news.items() if i in self._waits)
                        self._watch.notify_all()
        finally:
            with self._watch:
                del self._waits[task_id]
                if not self._waits:
                    _waiting.add(-1)

    def _late(self, task_id: int) -> TaskTimeoutError:
        return TaskTimeoutError(f"{self.where} had not finished task {task_id} when lbctl stopped waiting",
                                hint="Raise --timeout; dependency installs can take minutes.")

    def _poll(self, ids: list[int]) -> dict[int, dict]:
        listed: dict[Any, dict] = {}
        if len(ids) > 1 and self._list_route:
            try:
                listed = {t.get("id"): t for t in self.tasks()}
            except (NoApiError, ProtocolError):
                self._list_route = False  # an older LangBot: one request per task
        return {i: listed[i] if i in listed else self.task(i) for i in ids}

    def ready(self) -> bool:
        """LangBot can be acted on (spec §8 `--wait-ready`): see `readiness`."""
        return self.readiness()[0] == "ready"

    def readiness(self) -> tuple[str, str]:
        """("ready", "") or why not yet, with a phrase for messages:
        - "down": the plugins route does not answer 200 (LangBot starting, or its runtime not connected: 500);
        - "connecting": LangBot is replaying its installations to a runtime that has just connected. Meanwhile
          the plugins route answers 200 with `[]` (4.11.2 `PluginRuntimeConnector.list_plugins` while
          `_runtime_available()` is false); /healthz tells it: `resources.runtimes.plugin_runtime_connected`;
        - "restoring": connected, but fewer plugins are listed than LangBot holds
          (`resources.runtimes.plugin_installations`, its desired installations): the runtime lists a plugin
          only once its worker has started and registered.
        The plugins route is read first: it also drops installations LangBot no longer holds from that count.
        A LangBot whose /healthz lacks these fields (before 4.11) is ready once the plugins route answers."""
        try:
            listed = len(self.plugins(retry=False))  # a 500 here is "not yet": the wait loop asks again
        except CredentialsError:
            raise
        except LbctlError as exc:
            return "down", exc.message
        runtimes = self._health().get("runtimes")
        connected = runtimes.get("plugin_runtime_connected") if isinstance(runtimes, dict) else None
        if not isinstance(connected, bool):
            return "ready", ""
        if not connected:
            return "connecting", "its plugin runtime is still connecting"
        held = runtimes.get("plugin_installations")
        if isinstance(held, int) and not isinstance(held, bool) and listed < held:
            return "restoring", f"{listed} of its {held} plugins are back"
        return "ready", ""

    def _health(self) -> dict:
        """`resources` of GET /healthz (no key needed), or {} when it has none."""
        try:
            with self._http.stream("GET", "/healthz") as response:
                body = read_limited(response, MAX_JSON_BYTES)
                status = response.status_code
        except (httpx.HTTPError, TooLarge):
            return {}
        doc = _decode(body) if status == 200 else None
        resources = doc.get("resources") if isinstance(doc, dict) else None
        return resources if isinstance(resources, dict) else {}

    # --- transport -------------------------------------------------------------------------------
    def _task(self, method: str, path: str, **kwargs: Any) -> int:
        task_id = self._json(method, path, **kwargs).get("task_id")
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise self._protocol(f"{method} {path}", "data.task_id is not an integer")
        return task_id

    def _json(self, method: str, path: str, *, classify: Classifier | None = None, retry: bool | None = None,
              alone: bool = False, **kwargs: Any) -> dict:
        """One request; a GET (or `retry`) that gets a transient answer is asked again (module docstring)."""
        if not (method == "GET" if retry is None else retry):
            return self._once(method, path, classify, alone, kwargs)
        started, attempt = time.monotonic(), 0
        while True:
            try:
                return self._once(method, path, classify, alone, kwargs)
            except (ServerError, BusyError) as exc:
                window = min(BUSY_WINDOW, self.timeout) if isinstance(exc, ServerError) else self.timeout
                delay = min(0.1 * 2**attempt, MAX_DELAY)
                if time.monotonic() + delay - started > window or interrupted():
                    raise
            time.sleep(delay)
            attempt += 1

    def _once(self, method: str, path: str, classify: Classifier | None, alone: bool, kwargs: dict) -> dict:
        subject = f"{method} {path.split('?')[0]}"
        gate = (self.gate.alone() if alone else self.gate.shared()) if path.startswith("/plugins") else _no_gate()
        try:
            with gate, self._http.stream(method, API + path, **kwargs) as response:
                body = read_limited(response, MAX_JSON_BYTES)
                status = response.status_code
        except TooLarge:
            raise self._protocol(subject, f"the answer exceeds {MAX_JSON_BYTES} bytes") from None
        except httpx.InvalidURL as exc:
            raise InvalidSpecError(f"Cannot request {subject[:200]}: {exc}") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.where) from exc
        doc = _decode(body)
        if status == 200 and isinstance(doc, dict) and doc.get("code") == 0:
            data = doc.get("data")
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise self._protocol(subject, "data is not an object")
            if nesting(data) > MAX_NESTING:  # a value 500 deep would exhaust the stack of what walks it
                raise self._protocol(subject, f"it nests more than {MAX_NESTING} levels deep")
            return data
        raise self._error(status, doc, subject, classify)

    def _error(self, status: int, doc: Any, subject: str, classify: Classifier | None) -> LbctlError:
        if not isinstance(doc, dict) or "code" not in doc:
            if status in (404, 405):
                return NoApiError(f"{self.where} has no API for {subject} (HTTP {status})",
                                  hint="LangBot 4.11 or later is needed for this; some actions have no API at all.")
            return self._protocol(subject, f"HTTP {status} with an answer that is not LangBot's JSON envelope")
        code, msg = doc.get("code"), str(doc.get("msg") or "")[:300]
        known = classify(status, code, msg) if classify else None
        if known is not None:
            return known
        if status == 401 or code in ("invalid_authentication", "permission_denied") or status == 403:
            return CredentialsError(f"{self.where} refused the API key: {msg or f'HTTP {status}'}",
                                    hint="Check the key: `lbctl target login NAME`, or the variable it is read from.")
        if status == 429:
            return BusyError(f"{self.where} is busy: {msg}", hint="Wait for its running tasks, then try again.")
        if status == 500:
            return ServerError(f"{self.where} failed {subject} ({code}: {msg})", hint=RUNTIME_HINT)
        return RefusedError(f"{self.where} refused {subject}: {msg or f'HTTP {status}'}")

    def _protocol(self, subject: str, problem: str) -> ProtocolError:
        return ProtocolError(f"{self.where} answered {subject} in a way lbctl does not understand: {problem}",
                             hint="Check that the target URL points at LangBot 4.10 or later.")


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@contextmanager
def _no_gate() -> Iterator[None]:
    yield


def _plugin_missing(plugin_id: str) -> Classifier:
    def classify(status: int, code: Any, msg: str) -> LbctlError | None:
        if status == 404:
            return NotFoundError(f"{plugin_id} is not installed on this LangBot", plugin=plugin_id)
        return None

    return classify


def _transport_error(exc: httpx.HTTPError, where: str) -> LbctlError:
    if isinstance(exc, httpx.TimeoutException):
        detail, hint = describe_timeout(exc)
        # A connection never made never reached LangBot; a request that got no answer may have acted.
        kind = UnreachableError if isinstance(exc, httpx.ConnectTimeout) else LinkError
        return kind(f"{where} timed out: {detail}", hint=hint)
    if isinstance(exc, httpx.ConnectError):
        return UnreachableError(f"{where} is unreachable ({exc or type(exc).__name__})",
                            hint="Check the URL and that LangBot is running (--wait-ready waits for it).")
    if isinstance(exc, httpx.TransportError):
        return LinkError(f"{where}: the connection was cut ({exc or type(exc).__name__})")
    return ProtocolError(f"{where} gave an unusable answer ({exc or type(exc).__name__})")


def make_http(base_url: str, *, api_key: str | None, timeout: float) -> httpx.Client:
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        if len(api_key) > 4096 or not all("!" <= c <= "~" for c in api_key):  # never into a header, nor an error
            raise CredentialsError("The API key is not usable: a key is one word of printable ASCII characters")
        headers["X-API-Key"] = api_key
    # GETs are retried on connection errors and 502-504 only: LangBot's 500 and 429 are answers.
    return RetryingClient(retries=2, backoff=0.3, retry_on=lambda r: r.status_code in (502, 503, 504),
                          deadline=timeout, base_url=base_url, timeout=timeouts(timeout), headers=headers,
                          follow_redirects=False)
