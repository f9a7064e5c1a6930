"""MarketplaceClient: the LangBot Space API (docs/marketplace-api.md) over an injected httpx.Client."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Final, Generic, Iterable, TypeVar

import httpx

from lbctl import interrupts
from lbctl.errors import (
    CredentialsError,
    InvalidSpecError,
    LbctlError,
    NetworkError,
    NotFoundError,
    PackageInvalidError,
    ProtocolError,
    UsageError,
)
from lbctl.http import (RETRY_STATUSES, USER_AGENT, RetryingClient, TooLarge, describe_timeout, iter_decoded,
                        read_capped, read_limited, timeouts)
from lbctl.fsutil import PRIVATE_FILE, private_dir, writing, writing_to
from lbctl.specs import ID_PART, VERSION_CHARS

API: Final = "/api/v1/marketplace"
MAX_PACKAGE_BYTES: Final = 64 * 1024 * 1024
MAX_METADATA_BYTES: Final = 4 * 1024 * 1024
MAX_ERROR_BYTES: Final = 64 * 1024
CHUNK_SIZE: Final = 64 * 1024
PARALLEL_FETCHES: Final = 32
VERSION_NOT_FOUND: Final = "plugin version not found"
SORTS: Final = {"installs": "install_count", "newest": "created_at", "updated": "updated_at"}
NETWORK_HINT: Final = (
    "Check the network, the proxy variables (HTTPS_PROXY, NO_PROXY) and --index-url; "
    "--offline with --find-links works without the network."
)
PROTOCOL_HINT: Final = "Check that --index-url points at a LangBot marketplace; a newer lbctl may be needed."

# Every field of langbot-plugin's PluginInfo is required (docs/marketplace-api.md §3.1).
PLUGIN_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "created_at": (str,),
    "updated_at": (str,),
    "deleted_at": (str, type(None)),
    "plugin_id": (str,),
    "author": (str,),
    "name": (str,),
    "label": (dict,),
    "description": (dict,),
    "icon": (str,),
    "repository": (str,),
    "tags": (list, type(None)),
    "install_count": (int,),
    "latest_version": (str,),
    "status": (str,),
}

Progress = Callable[[int, "int | None"], None]
Verify = Callable[[Path, str], None]  # (temporary file, its sha256)
# Turns an error status and its `msg` into the exception to raise, or None for the generic mapping. `msg` is None
# when the answer is not the marketplace's {code, msg} envelope (an HTML page, another API's JSON, nothing).
Classifier = Callable[[int, "str | None"], "Exception | None"]
T = TypeVar("T")
R = TypeVar("R")


class MarketplaceClient:
    """Reads plugin records and downloads packages; raises only LbctlError subclasses."""

    def __init__(self, http: httpx.Client):
        self._http = http

    @property
    def index_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def plugin(self, author: str, name: str) -> dict:
        """The PluginInfo record of `author/name`."""
        plugin_id = _plugin_id(author, name)
        answer = self._request("GET", f"{API}/plugins/{plugin_id}", classify=_missing(plugin_id))
        return _check_plugin(answer.field("plugin", dict), answer.subject)

    def versions(self, author: str, name: str) -> list[str]:
        """Every version of `author/name`, newest first as the marketplace orders them."""
        plugin_id = _plugin_id(author, name)
        answer = self._request("GET", f"{API}/plugins/{plugin_id}/versions", classify=_missing(plugin_id))
        return [_version_of(entry, answer.subject) for entry in answer.field("versions", list)]

    def search(
        self,
        query: str = "",
        *,
        component: str | None = None,
        tags: Iterable[str] = (),
        sort: str = "installs",
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[list[dict], int]:
        """One page of plugins matching `query`, and the number of matches on all pages."""
        body = _search_body(query, component, tuple(tags), sort, page, page_size)
        try:
            answer = self._request("POST", f"{API}/extensions/search", json=body, classify=_route_missing)
            key = "extensions"
        except _RouteMissing:
            answer = self._request("POST", f"{API}/plugins/search", json=body)
            key = "plugins"
        items = [_check_item(item, answer.subject) for item in answer.field(key, list)]
        return items, answer.field("total", int)

    def download(
        self,
        author: str,
        name: str,
        version: str,
        *,
        dest_dir: Path,
        max_bytes: int = MAX_PACKAGE_BYTES,
        on_progress: Progress | None = None,
        verify: Verify | None = None,
    ) -> tuple[Path, str]:
        """Download one release into `dest_dir/<sha256>.lbpkg`; returns the path and the sha256.

        `verify(temp_path)` runs before the file takes its final name; if it raises, nothing is left in
        `dest_dir` and a file already there under the same sha256 is not touched.
        """
        plugin_id = _plugin_id(author, name)
        if not VERSION_CHARS.match(version):
            raise InvalidSpecError(f"Invalid version {version!r} for {plugin_id}", plugin=plugin_id)
        fetch = _Fetch(f"{API}/plugins/download/{plugin_id}/{version}", f"{plugin_id} {version}", max_bytes)
        return self._download(fetch, dest_dir, on_progress, verify, _missing(plugin_id, version))

    def download_url(
        self,
        url: str,
        *,
        dest_dir: Path,
        max_bytes: int = MAX_PACKAGE_BYTES,
        on_progress: Progress | None = None,
        verify: Verify | None = None,
    ) -> tuple[Path, str]:
        """Download a package from an http(s) URL, like `download`; redirects are followed."""
        if not url.lower().startswith(("http://", "https://")):
            raise InvalidSpecError(f"Not an http(s) URL: {url}")
        return self._download(_Fetch(url, url, max_bytes), dest_dir, on_progress, verify, _url_errors(url))

    def _request(self, method: str, path: str, *, json: Any = None, classify: Classifier | None = None) -> _Answer:
        subject = f"{method} {path}"
        try:
            with self._http.stream(method, path, json=json) as response:
                if not response.is_success:
                    raise _status_error(response, subject, classify)
                body = _read_limited(response, MAX_METADATA_BYTES, subject)
        except httpx.InvalidURL as exc:
            raise _invalid_url(subject, exc) from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc, f"The marketplace at {self.index_url}") from exc
        return _Answer(subject, _envelope(body, subject))

    def _download(
        self, fetch: _Fetch, dest_dir: Path, on_progress: Progress | None, verify: Verify | None,
        classify: Classifier,
    ) -> tuple[Path, str]:
        tmp = private_dir(dest_dir) / f".download-{uuid.uuid4().hex}.part"
        with writing(dest_dir):  # a live download: the next run's sweep leaves its .part file alone
            out = _open_new(tmp)
            try:
                with out:
                    digest = self._stream_into(fetch, out, on_progress, classify)
                if verify is not None:
                    verify(tmp, digest)
                return _publish(tmp, dest_dir, digest), digest
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def _stream_into(self, fetch: _Fetch, out: IO[bytes], on_progress: Progress | None, classify: Classifier) -> str:
        try:
            with self._http.stream("GET", fetch.url, follow_redirects=True) as response:
                if not response.is_success:
                    raise _status_error(response, f"GET {fetch.url}", classify)
                return _copy_body(response, out, fetch, on_progress)
        except httpx.InvalidURL as exc:
            raise _invalid_url(fetch.url, exc) from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc, f"The download of {fetch.origin}") from exc


@dataclass(frozen=True)
class _Fetch:
    url: str
    origin: str
    max_bytes: int


@dataclass(frozen=True)
class _Answer:
    """The `data` object of a well-formed envelope, and the request it answered (for messages)."""

    subject: str
    data: dict

    def field(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise _protocol(self.subject, f"data.{key} is missing")
        value = self.data[key]
        if not _is(value, kind):
            raise _protocol(self.subject, f"data.{key} is {_type_name(value)}, not {_type_name(kind)}")
        return value


class _RouteMissing(Exception):
    """The unified search route answered 404: fall back to the plugin search route."""


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return kind is bool or (isinstance(kind, tuple) and bool in kind)
    return isinstance(value, kind)


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", type(None): "null"}
    if isinstance(value, tuple):
        return " or ".join(names.get(kind, kind.__name__) for kind in value)
    if isinstance(value, type):
        return names.get(value, value.__name__)
    return "a boolean" if isinstance(value, bool) else names.get(type(value), type(value).__name__)


def _protocol(subject: str, problem: str) -> ProtocolError:
    return ProtocolError(f"The marketplace answered {subject} in a way lbctl does not understand: {problem}",
                         hint=PROTOCOL_HINT)


def _plugin_id(author: str, name: str) -> str:
    if not (ID_PART.match(author) and ID_PART.match(name)):
        raise InvalidSpecError(f"Invalid plugin id {author}/{name}: use letters, digits, '_' and '-'")
    return f"{author}/{name}"


def _read_limited(response: httpx.Response, limit: int, subject: str) -> bytes:
    try:
        return read_limited(response, limit)
    except TooLarge:
        raise _protocol(subject, f"the answer exceeds {limit} bytes") from None


def _envelope(body: bytes, subject: str) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _protocol(subject, "the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise _protocol(subject, f"the answer is {_type_name(doc)}, not a JSON object")
    if "code" not in doc or "data" not in doc:
        raise _protocol(subject, "the answer is not the {code, msg, data} envelope")
    if type(doc["code"]) is not int or doc["code"] != 0:
        raise _protocol(subject, f"code {doc['code']!r}: {_message(doc) or 'no message'}")
    if not isinstance(doc["data"], dict):
        raise _protocol(subject, f"data is {_type_name(doc['data'])}, not an object")
    return doc["data"]


def _message(doc: Any) -> str:
    msg = doc.get("msg") if isinstance(doc, dict) else None
    return msg.strip()[:300] if isinstance(msg, str) else ""


def _error_message(response: httpx.Response) -> str | None:
    """The `msg` of an error answer in the marketplace's envelope (read up to 64 KiB; "" when it has none), or
    None when the answer is not that envelope: a JSON object with an integer `code`."""
    try:
        doc = json.loads(read_capped(response, MAX_ERROR_BYTES))
    except (httpx.HTTPError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or type(doc.get("code")) is not int:
        return None
    return _message(doc)


def _status_error(response: httpx.Response, subject: str, classify: Classifier | None) -> Exception:
    status = response.status_code
    msg = _error_message(response) if status >= 400 else ""
    known = classify(status, msg) if classify else None
    if known is not None:
        return known
    detail = f"HTTP {status}" + (f": {msg}" if msg else "")
    if status == 404 and msg is None:
        kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
        return _protocol(subject, f"HTTP 404 with an answer that is not the marketplace's API ({kind})")
    if 300 <= status < 400:
        where = response.headers.get("Location", "?")
        return _protocol(subject, f"a redirect to {where} (redirects are only followed for downloads)")
    if status in (401, 403):
        return CredentialsError(f"Access refused for {subject}: {detail}", hint="The marketplace needs no login; "
                                "check --index-url and any proxy in between.")
    if status == 408 or status == 429 or status >= 500:
        return NetworkError(f"The server is unavailable ({subject}): {detail}", hint=NETWORK_HINT)
    return _protocol(subject, detail)


def _missing(plugin_id: str, version: str | None = None) -> Classifier:
    """A 404 in the marketplace's envelope is "not found"; any other 404 (a web server's page) is exit 8."""

    def classify(status: int, msg: str | None) -> Exception | None:
        if msg is None:
            return None
        if version is not None and status in (404, 500) and msg.startswith(VERSION_NOT_FOUND):
            return NotFoundError(f"{plugin_id} has no version {version} on the marketplace", plugin=plugin_id,
                                 hint=f"See `lbctl market show {plugin_id} --versions`.")
        if status == 404 and version is not None:
            return NotFoundError(f"{plugin_id} {version} is not on the marketplace", plugin=plugin_id,
                                 hint=f"See `lbctl market show {plugin_id} --versions`.")
        if status == 404:
            return NotFoundError(f"No plugin named {plugin_id} on the marketplace", plugin=plugin_id,
                                 hint=f"Search with `lbctl market search {plugin_id.split('/')[1]}`.")
        return None

    return classify


def _url_errors(url: str) -> Classifier:
    def classify(status: int, msg: str | None) -> Exception | None:
        if status in (404, 410):
            return NotFoundError(f"Nothing found at {url} (HTTP {status})")
        if status in (401, 403):
            return CredentialsError(f"{url} refused access (HTTP {status})",
                                    hint="lbctl sends no credentials; download the file and install it by path.")
        if status in (408, 429) or status >= 500:
            return None
        return ProtocolError(f"{url} answered HTTP {status}" + (f": {msg}" if msg else ""))

    return classify


def _route_missing(status: int, msg: str | None) -> Exception | None:
    return _RouteMissing() if status == 404 else None


def _invalid_url(subject: str, exc: Exception) -> InvalidSpecError:
    shown = subject if len(subject) <= 200 else subject[:200] + "…"
    return InvalidSpecError(f"Cannot request {shown}: {exc}")


def _transport_error(exc: httpx.HTTPError, what: str) -> LbctlError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        detail, hint = describe_timeout(exc)
        return NetworkError(f"{what} timed out: {detail}", hint=hint)
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"{what} failed: cannot connect ({reason})", hint=NETWORK_HINT)
    if isinstance(exc, httpx.TransportError):
        return NetworkError(f"{what} failed: the connection was cut ({reason})", hint=NETWORK_HINT)
    return ProtocolError(f"{what} failed: unusable answer ({reason})", hint=PROTOCOL_HINT)


def _check_plugin(plugin: dict, subject: str) -> dict:
    for key, kinds in PLUGIN_FIELDS.items():
        if key not in plugin:
            raise _protocol(subject, f"data.plugin.{key} is missing")
        if not _is(plugin[key], kinds):
            raise _protocol(subject, f"data.plugin.{key} is {_type_name(plugin[key])}, not {_type_name(kinds)}")
    for key in ("label", "description"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in plugin[key].items()):
            raise _protocol(subject, f"data.plugin.{key} must map languages to strings")
    if plugin["tags"] is not None and not all(isinstance(tag, str) for tag in plugin["tags"]):
        raise _protocol(subject, "data.plugin.tags must be a list of strings")
    return plugin


def _check_item(item: Any, subject: str) -> dict:
    if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("author", "name")):
        raise _protocol(subject, "a search result is not a plugin record with author and name")
    return item


def _version_of(entry: Any, subject: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("version"), str) or not entry["version"]:
        raise _protocol(subject, "a data.versions entry has no version string")
    return entry["version"]


def _search_body(query: str, component: str | None, tags: tuple[str, ...], sort: str, page: int,
                 page_size: int) -> dict:
    if sort not in SORTS:
        raise UsageError(f"Unknown sort {sort!r}: use {', '.join(SORTS)}")
    if page < 1 or not 1 <= page_size <= 100:
        raise UsageError("The page must be 1 or more and the page size between 1 and 100")
    body: dict[str, Any] = {"query": query, "page": page, "page_size": page_size, "sort_by": SORTS[sort],
                            "sort_order": "DESC", "type_filter": "plugin"}
    if component:
        body["component_filter"] = component
    if tags:
        body["tags_filter"] = list(tags)
    return body


def _open_new(tmp: Path) -> IO[bytes]:
    # The temporary file sits in the destination directory so that the final rename is atomic.
    with writing_to(tmp.parent):
        return open(tmp, "xb", opener=lambda path, flags: os.open(path, flags, PRIVATE_FILE))


def _content_length(response: httpx.Response, origin: str) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise ProtocolError(f"The download of {origin} has an invalid Content-Length {value!r}")
    return int(value)


def _too_large(origin: str, limit: int) -> PackageInvalidError:
    size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"
    return PackageInvalidError(f"The package {origin} is larger than the limit of {size}")


def _copy_body(response: httpx.Response, out: IO[bytes], fetch: _Fetch, on_progress: Progress | None) -> str:
    expected = _content_length(response, fetch.origin)
    if expected is not None and expected > fetch.max_bytes:
        raise _too_large(fetch.origin, fetch.max_bytes)
    digest, done = hashlib.sha256(), 0
    try:
        for chunk in iter_decoded(response, fetch.max_bytes):
            done += len(chunk)
            digest.update(chunk)
            _write(out, chunk)
            if on_progress is not None:
                on_progress(done, expected)
    except TooLarge:
        raise _too_large(fetch.origin, fetch.max_bytes) from None
    _check_complete(response.num_bytes_downloaded, expected, fetch.origin)
    return digest.hexdigest()


def _write(out: IO[bytes], chunk: bytes) -> None:
    with writing_to(Path(out.name)):
        out.write(chunk)


def _check_complete(received: int, expected: int | None, origin: str) -> None:
    # Compared with the bytes on the wire: Content-Length counts them before any Content-Encoding.
    if expected is None or received == expected:
        return
    if received < expected:
        raise NetworkError(f"The download of {origin} was cut short: {received} of {expected} bytes",
                           hint=NETWORK_HINT)
    raise ProtocolError(f"The download of {origin} sent {received} bytes but announced {expected}")


def _publish(tmp: Path, dest_dir: Path, digest: str) -> Path:
    # Always replaced: a file already under that name may be damaged, and the new one was just verified.
    target = dest_dir / f"{digest}.lbpkg"
    with writing_to(target):
        os.replace(tmp, target)
    return target


def should_retry(response: httpx.Response) -> bool:
    """Server errors are retried, except the 500 "plugin version not found", which is an answer."""
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 500 and not _is_answer(response)


def _is_answer(response: httpx.Response) -> bool:
    length = response.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > MAX_ERROR_BYTES:
        return False
    return (_error_message(response) or "").startswith(VERSION_NOT_FOUND)


def make_http(base_url: str, *, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5) -> httpx.Client:
    """The client every marketplace call uses: User-Agent, TLS verified, proxy variables honoured, retries, and
    `timeout` as the deadline of each whole request."""
    from lbctl.urls import require

    require(base_url, "marketplace URL")
    return RetryingClient(
        retries=retries,
        backoff=backoff,
        retry_on=should_retry,
        deadline=timeout,
        base_url=base_url.rstrip("/"),
        timeout=timeouts(timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        # httpx keeps 20 idle connections: with more workers, every request past 20 would connect anew
        limits=httpx.Limits(max_keepalive_connections=PARALLEL_FETCHES),
    )


@dataclass(frozen=True)
class Fetched(Generic[T, R]):
    """The outcome of `fn(item)`: a value, or the LbctlError it raised."""

    item: T
    value: R | None = None
    error: LbctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fetch_many(items: Iterable[T], fn: Callable[[T], R], *, max_workers: int = PARALLEL_FETCHES,
               grace: float = 0.0) -> list[Fetched[T, R]]:
    """Run `fn` over `items` in threads; results in the order of `items`, one failure stops nothing.

    Only LbctlError is captured per item; any other exception is a bug and propagates. The threads are daemons
    and take no new item once the command is interrupted, so a Ctrl-C never waits for downloads to finish; with
    `grace`, it waits that long for the items under way, and the KeyboardInterrupt carries `results` (None for
    an item not finished) and `begun` (the indexes of the items that were started).
    """
    items = list(items)
    if len(items) <= 1:
        return [_capture(fn, item) for item in items]
    results: list[Any] = [None] * len(items)
    todo = iter(range(len(items)))
    begun: set[int] = set()
    lock = threading.Lock()
    workers = min(max_workers, len(items))
    running = [workers]
    finished = threading.Event()  # not Thread.join: a join that a Ctrl-C interrupts marks its thread as stopped
    # while it still runs (CPython's bpo-45274 handling), and every later join returns at once

    def work() -> None:
        try:
            while not interrupts.received():
                with lock:
                    index = next(todo, None)
                    if index is not None:
                        begun.add(index)
                if index is None:
                    return
                try:
                    results[index] = _capture(fn, items[index])
                except BaseException as exc:  # noqa: BLE001 - a bug: raised again in the calling thread
                    results[index] = exc
        finally:
            with lock:
                running[0] -= 1
                if not running[0]:
                    finished.set()

    for _ in range(workers):
        threading.Thread(target=work, name="lbctl-fetch", daemon=True).start()
    try:
        finished.wait()
        interrupts.check()
    except KeyboardInterrupt as exc:
        finished.wait(grace)
        with lock:
            exc.results = [r if isinstance(r, Fetched) else None for r in results]  # type: ignore[attr-defined]
            exc.begun = set(begun)  # type: ignore[attr-defined]
        raise
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _capture(fn: Callable[[T], R], item: T) -> Fetched[T, R]:
    try:
        return Fetched(item, value=fn(item))
    except LbctlError as exc:
        return Fetched(item, error=exc)
