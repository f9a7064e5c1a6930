"""A local LangBot marketplace for tests: the routes of docs/marketplace-api.md §6 over real HTTP.

    with FakeMarket() as market:
        market.add(make_lbpkg("acme", "echo", "1.0.0"), install_count=5)
        client = MarketplaceClient(make_http(market.url))

Versions are listed newest first in the order they were added (the last `add` is the latest release),
like a service that orders by publish time. Fault knobs: `latency`, `truncate_downloads`, `broken`,
`fail_requests`, `drop_requests`, `unified_search`; hostile servers: `raw_answer` (any bytes with any
Content-Encoding, e.g. a `gzip_bomb`), `bomb_downloads`, `trickle` (headers or body one byte at a time,
forever) and `trickle_downloads`.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from lbctl import lbpkg

API: Final = "/api/v1/marketplace"
LANGUAGES: Final = ("en_US", "zh_Hans", "zh_Hant", "ja_JP")
EPOCH: Final = datetime(2025, 8, 10, 12, 0, 0, tzinfo=timezone.utc)


@dataclass
class Listing:
    """One plugin on the fake marketplace; `releases` is oldest first."""

    author: str
    name: str
    label: str = ""
    description: str = ""
    repository: str = ""
    install_count: int = 0
    tags: list[str] | None = None
    status: str = "live"
    components: dict[str, int] = field(default_factory=dict)
    releases: list[tuple[str, bytes]] = field(default_factory=list)
    created: int = 0
    updated: int = 0

    @property
    def plugin_id(self) -> str:
        return f"{self.author}/{self.name}"

    def info(self) -> dict[str, Any]:
        """The PluginInfo record, every field present."""
        return {
            "created_at": _time(self.created),
            "updated_at": _time(self.updated),
            "deleted_at": None,
            "plugin_id": self.plugin_id,
            "author": self.author,
            "name": self.name,
            "label": _i18n(self.label or self.name),
            "description": _i18n(self.description),
            "icon": f"plugins/{self.author}/{self.name}/resources/icon.svg",
            "repository": self.repository,
            "tags": self.tags,
            "install_count": self.install_count,
            "latest_version": self.releases[-1][0],
            "status": self.status,
        }

    def v4(self) -> dict[str, Any]:
        """PluginInfo plus the WebUI's PluginV4 extras, as list and search answer."""
        return {**self.info(), "id": self.created, "components": dict(self.components), "type": "plugin",
                "like_count": 0, "hot_score": self.install_count, "certification_status": "none",
                "runner_usages": []}

    def release(self, version: str) -> bytes | None:
        return next((data for v, data in self.releases if v == version), None)


def _time(tick: int) -> str:
    return (EPOCH + timedelta(minutes=tick)).isoformat()


def _i18n(text: str) -> dict[str, str]:
    return {lang: (text if lang == "en_US" else "") for lang in LANGUAGES}


class FakeMarket:
    """A threaded HTTP server on 127.0.0.1 speaking the marketplace API; use as a context manager."""

    def __init__(self, port: int = 0) -> None:
        self.port = port  # 0: any free port
        self.latency = 0.0
        self.truncate_downloads = False
        self.broken: str | None = None  # "notjson", "noenvelope", "code" or "types"
        self.fail_requests = 0  # the next N requests answer HTTP 503
        self.drop_requests = 0  # the next N requests get the connection closed without an answer
        self.unified_search = True  # False: /extensions/search answers 404, as older services do
        self.raw_answer: tuple[str, bytes] | None = None  # (Content-Encoding, body) served for every request
        self.trickle: str | None = None  # "headers" or "body": one byte per `trickle_interval`, never ending
        self.trickle_interval = 0.5
        self.bomb_downloads: tuple[str, bytes] | None = None  # like raw_answer, for package downloads only
        self.trickle_downloads: float | None = None  # packages sent 64 bytes at a time, this many seconds apart
        self.requests: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests waiting out `latency` at once: proof of concurrency
        self.headers: list[dict[str, str]] = []
        self.bodies: list[Any] = []
        self._lock = threading.Lock()
        self._plugins: dict[str, Listing] = {}
        self._tick = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeMarket is not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeMarket:
        self._server = _Server(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fakemarket", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMarket:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, package: bytes, *, install_count: int = 0, tags: list[str] | None = None,
            status: str = "live", repository: str | None = None) -> lbpkg.PackageInfo:
        """Publish a real package under the id and version its manifest declares."""
        info = lbpkg.read_bytes(package)
        listing = self.add_raw(info.author, info.name, info.version, package, install_count=install_count,
                               tags=tags, status=status)
        with self._lock:
            listing.label, listing.description = info.label, info.description
            listing.repository = info.repository if repository is None else repository
            listing.components = {kind: len(items) for kind, items in info.components_by_kind().items()}
        return info

    def add_raw(self, author: str, name: str, version: str, data: bytes, *, install_count: int = 0,
                tags: list[str] | None = None, status: str = "live") -> Listing:
        """Publish any bytes (hostile ones included) as `author/name` `version`."""
        with self._lock:
            self._tick += 1
            listing = self._plugins.setdefault(f"{author}/{name}", Listing(author, name, created=self._tick))
            listing.releases = [(v, d) for v, d in listing.releases if v != version] + [(version, data)]
            listing.install_count, listing.tags, listing.status = install_count, tags, status
            listing.updated = self._tick
            return listing

    def remove(self, plugin_id: str) -> None:
        with self._lock:
            self._plugins.pop(plugin_id, None)

    def listing(self, plugin_id: str) -> Listing | None:
        with self._lock:
            return self._plugins.get(plugin_id)

    def listings(self) -> list[Listing]:
        with self._lock:
            return list(self._plugins.values())

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (optionally only those of one method)."""
        with self._lock:
            return [p for m, p in self.requests if method is None or m == method]

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append((method, path))
            self.headers.append(headers)
            self.bodies.append(body)

    def _take_fault(self) -> str | None:
        with self._lock:
            if self.drop_requests > 0:
                self.drop_requests -= 1
                return "drop"
            if self.fail_requests > 0:
                self.fail_requests -= 1
                return "fail"
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up is not news
            super().handle_error(request, client_address)


def _handler_for(market: FakeMarket) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.market = market
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer waits ~40 ms for the client's
    # delayed ACK, which no real web server does.
    disable_nagle_algorithm = True
    market: FakeMarket

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        self.market._record(method, url.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.market._lock:
            self.market.in_flight += 1
            self.market.max_in_flight = max(self.market.max_in_flight, self.market.in_flight)
        try:
            if self.market.latency:
                time.sleep(self.market.latency)
        finally:
            with self.market._lock:
                self.market.in_flight -= 1
        fault = self.market._take_fault()
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "fail":
            return self._json(503, {"code": -1, "msg": "service unavailable"})
        if self.market.trickle:
            return self._trickle(self.market.trickle, self.market.trickle_interval)
        if self.market.raw_answer is not None:
            return self._raw(*self.market.raw_answer)
        _route(self, method, url.path, parse_qs(url.query), body)

    def _raw(self, encoding: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _trickle_package(self, data: bytes, interval: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for offset in range(0, len(data), 64):
                self.wfile.write(data[offset : offset + 64])
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            self.close_connection = True

    def _trickle(self, phase: str, interval: float) -> None:
        """An answer that never completes: each byte comes soon enough to reset any read timeout."""
        self.close_connection = True
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if phase == "body":
            head += b"Content-Length: 1000000000\r\n\r\n"
        else:
            head += b"X-Slow: "
        try:
            self.wfile.write(head)
            while True:
                time.sleep(interval)
                self.wfile.write(b" " if phase == "body" else b"a")
                self.wfile.flush()
        except OSError:
            return  # the client gave up

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def ok(self, data: dict[str, Any]) -> None:
        broken = self.market.broken
        if broken == "notjson":
            return self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
        if broken == "noenvelope":
            return self._json(200, data)
        if broken == "code":
            return self._json(200, {"code": 1, "msg": "internal failure", "data": None})
        if broken == "types":
            data = {key: "oops" for key in data}
        self._json(200, {"code": 0, "msg": "ok", "data": data})

    def not_found(self, what: str = "plugin") -> None:
        self._json(404, {"code": -1, "msg": f"{what} not found"})

    def package(self, data: bytes) -> None:
        if self.market.bomb_downloads is not None:
            return self._raw(*self.market.bomb_downloads)
        if self.market.trickle_downloads is not None:
            return self._trickle_package(data, self.market.trickle_downloads)
        if not self.market.truncate_downloads:
            return self._send(200, data, "application/octet-stream")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


def _route(handler: _Handler, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
    parts = path.removeprefix(API).strip("/").split("/") if path.startswith(API + "/") else []
    market = handler.market
    if method == "POST" and parts in (["plugins", "search"], ["extensions", "search"]):
        return _search(handler, parts[0], body if isinstance(body, dict) else {})
    if method != "GET" or not parts:
        return handler.not_found("route")
    if parts == ["plugins"]:
        return _list(handler, query)
    if parts == ["tags"]:
        return handler.ok({"tags": []})
    if len(parts) == 3 and parts[0] in ("mcps", "skills"):
        return handler.not_found(parts[0][:-1])
    if len(parts) == 5 and parts[:2] == ["plugins", "download"]:
        return _download(handler, f"{parts[2]}/{parts[3]}", parts[4])
    listing = market.listing("/".join(parts[1:3])) if len(parts) >= 3 and parts[0] == "plugins" else None
    if listing is None:
        return handler.not_found()
    if len(parts) == 3:
        return handler.ok({"plugin": listing.info()})
    if parts[3:] == ["versions"]:
        return handler.ok({"versions": [{"version": v, "created_at": _time(listing.updated)}
                                        for v, _ in reversed(listing.releases)]})
    if parts[3:] == ["resources", "README"]:
        return handler.ok({"readme": f"# {listing.label or listing.name}\n"})
    return handler.not_found("route")


def _download(handler: _Handler, plugin_id: str, version: str) -> None:
    listing = handler.market.listing(plugin_id)
    if listing is None:
        return handler.not_found()
    data = listing.release(version)
    if data is None:
        return handler._json(500, {"code": -1, "msg": f"plugin version not found: {version}"})
    handler.package(data)


_SORT_KEYS: Final = {"install_count": "install_count", "hot_score": "install_count",
                     "created_at": "created", "updated_at": "updated"}


def _page(listings: list[Listing], page: Any, page_size: Any) -> list[Listing]:
    page, size = max(int(page or 1), 1), max(int(page_size or 20), 1)
    return listings[(page - 1) * size : page * size]


def _sorted(listings: list[Listing], sort_by: Any, sort_order: Any) -> list[Listing]:
    key = _SORT_KEYS.get(sort_by or "hot_score", "install_count")
    return sorted(listings, key=lambda item: getattr(item, key), reverse=str(sort_order or "DESC").upper() != "ASC")


def _list(handler: _Handler, query: dict[str, list[str]]) -> None:
    first = {k: v[0] for k, v in query.items()}
    listings = _sorted(handler.market.listings(), first.get("sort_by"), first.get("sort_order"))
    page = _page(listings, first.get("page"), first.get("page_size"))
    handler.ok({"plugins": [item.v4() for item in page], "total": len(listings)})


def _matches(item: Listing, body: dict[str, Any]) -> bool:
    text = str(body.get("query") or "").lower()
    haystack = " ".join((item.author, item.name, item.label, item.description)).lower()
    if text and text not in haystack:
        return False
    if body.get("type_filter") not in (None, "", "plugin"):
        return False
    if body.get("component_filter") and not item.components.get(body["component_filter"]):
        return False
    tags = body.get("tags_filter") or []
    return not tags or bool(set(tags) & set(item.tags or []))


def _search(handler: _Handler, route: str, body: dict[str, Any]) -> None:
    if route == "extensions" and not handler.market.unified_search:
        return handler.not_found("route")
    found = [item for item in handler.market.listings() if _matches(item, body)]
    found = _sorted(found, body.get("sort_by"), body.get("sort_order"))
    page = _page(found, body.get("page"), body.get("page_size"))
    handler.ok({route: [item.v4() for item in page], "total": len(found)})


def gzip_bomb(size: int, layers: int = 1) -> bytes:
    """`size` zero bytes (a multiple of 1 MiB) gzipped `layers` times, built fast from one repeated deflate
    block: 1 GiB is about 1 MB with one layer and 2 KB with two. Serve it as Content-Encoding "gzip, gzip"."""
    unit = 1 << 20
    block = bytes(unit)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflate.compress(block)
    deflate.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the dictionary is empty, so the next block compresses to bytes that can be repeated.
    repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // unit):
        crc = zlib.crc32(block, crc)
    data = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + repeated * (size // unit)
            + deflate.flush(zlib.Z_FINISH) + struct.pack("<II", crc, size & 0xFFFFFFFF))
    for _ in range(layers - 1):
        outer = zlib.compressobj(9, zlib.DEFLATED, 31)
        data = outer.compress(data) + outer.flush()
    return data
