"""What every HTTP client of lbctl shares: the User-Agent, retries with backoff, a deadline for the whole request,
and reading bodies with a limit on their decoded size."""

from __future__ import annotations

import ssl
import threading
import time
import zlib
from contextlib import contextmanager
from typing import Any, Callable, Final, Iterator

import httpx

from lbctl import __version__, interrupts

USER_AGENT: Final = f"lbctl/{__version__}"
ACCEPT_ENCODING: Final = "gzip, deflate"  # the only codings iter_decoded knows
MAX_BACKOFF: Final = 8.0
CHUNK_SIZE: Final = 64 * 1024
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
# A connect timeout is not retried: the kernel has already resent the SYN during CONNECT_TIMEOUT.
RETRY_ERRORS: Final = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
# Seconds to connect (TCP and TLS; --timeout when that is shorter): a server that does not even take the connection
# fails in seconds, not after the whole --timeout.
CONNECT_TIMEOUT: Final = 5.0
CAPPED_BODY: Final = "lbctl.capped_body"


class TooLarge(Exception):
    """An answer exceeded its size limit."""


# --- reading bodies --------------------------------------------------------------------------------------


def iter_decoded(response: httpx.Response, limit: int) -> Iterator[bytes]:
    """The body, decoded as its Content-Encoding says, in pieces of at most CHUNK_SIZE bytes; TooLarge as soon as
    more than `limit` decoded bytes came. httpx's own decoders inflate each network chunk whole: 7 KB of stacked
    gzip would become 4 GiB in memory before any limit could be checked."""
    pieces: Iterator[bytes] = response.iter_raw(CHUNK_SIZE)
    for coding in reversed(_codings(response)):
        pieces = _inflate(pieces, coding, response.request)
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > limit:
            raise TooLarge(limit)
        yield piece


def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The whole decoded body, refusing to hold more than `limit` bytes."""
    return b"".join(iter_decoded(response, limit))


def read_capped(response: httpx.Response, limit: int) -> bytes:
    """At most the first `limit` decoded bytes (an error answer's message); kept, so a second call gets them too."""
    if CAPPED_BODY not in response.extensions:
        kept, size = [], 0
        for piece in iter_decoded(response, 1 << 62):
            kept.append(piece)
            size += len(piece)
            if size >= limit:
                break
        response.extensions[CAPPED_BODY] = b"".join(kept)[:limit]
    return response.extensions[CAPPED_BODY]


def _codings(response: httpx.Response) -> list[str]:
    header = response.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise httpx.DecodingError(f"unsupported Content-Encoding {coding!r}", request=response.request)
    return codings


def _inflate(pieces: Iterator[bytes], coding: str, request: httpx.Request) -> Iterator[bytes]:
    """One layer of gzip or deflate, never producing more than CHUNK_SIZE bytes per step."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16 if "gzip" in coding else zlib.MAX_WBITS)
    started = False
    for data in pieces:
        while not decoder.eof:
            try:
                out = decoder.decompress(data, CHUNK_SIZE)
            except zlib.error as exc:
                if coding == "deflate" and not started:
                    # Some servers send deflate without the zlib header; httpx accepts it too.
                    decoder, started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise httpx.DecodingError(f"invalid {coding} data: {exc}", request=request) from None
            started = True
            if out:
                yield out
            data = decoder.unconsumed_tail
            if not data and len(out) < CHUNK_SIZE:  # a full output may have left more inside zlib
                break


# --- a deadline for the whole request ---------------------------------------------------------------------


_deadline = threading.local()


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every socket operation of this thread within the block must end `seconds` from now (an outer, earlier
    deadline stays in force). httpx's read timeout restarts with every byte, so on its own a server sending one
    byte a second keeps a request alive for ever."""
    outer = getattr(_deadline, "value", None)
    if seconds is not None:
        mine = (time.monotonic() + seconds, seconds)
        _deadline.value = mine if outer is None or mine[0] < outer[0] else outer
    try:
        yield
    finally:
        _deadline.value = outer


def remaining() -> float | None:
    """Seconds left before the current deadline (None: no deadline); DeadlineExceeded when none are."""
    current = getattr(_deadline, "value", None)
    if current is None:
        return None
    left = current[0] - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(f"no complete answer within {current[1]:g} s (--timeout)")
    return left


class DeadlineExceeded(httpx.TimeoutException):
    def __init__(self, message: str):
        super().__init__(message)


_exempt = threading.local()


@contextmanager
def despite_interrupt() -> Iterator[None]:
    """Requests of this thread go on after Ctrl-C, each still bounded by its deadline: a change that was under way
    on a server is finished or read back before lbctl reports what happened."""
    before = getattr(_exempt, "on", False)
    _exempt.on = True
    try:
        yield
    finally:
        _exempt.on = before


def interrupted() -> bool:
    """Whether this thread's network I/O must stop: a signal came and the thread is not finishing a change."""
    return bool(interrupts.received()) and not getattr(_exempt, "on", False)


def _bounded(timeout: float | None, timeout_error: str) -> float | None:
    try:
        if interrupted():
            raise DeadlineExceeded("interrupted")  # a worker thread of an interrupted command stops here
        left = remaining()
    except DeadlineExceeded as exc:
        import httpcore

        raise getattr(httpcore, timeout_error)(str(exc)) from None
    return left if timeout is None or (left is not None and left < timeout) else timeout


class _DeadlineStream:
    """A network stream whose every read and write waits at most until the thread's deadline."""

    def __init__(self, inner: Any):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, "ReadTimeout"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, "WriteTimeout"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        if isinstance(ssl_context, DeferredTrust):
            ssl_context = ssl_context.real()
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, "ConnectTimeout")))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeferredTrust(ssl.SSLContext):
    """Stands for the context httpx would build (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR) until the first
    TLS connection needs it: loading the CA bundle costs ~30 ms of every start, and plain http never uses it."""

    def __new__(cls) -> DeferredTrust:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    def real(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                try:
                    context = httpx.create_ssl_context(verify=True, trust_env=True)
                except OSError as exc:  # SSL_CERT_FILE=/nope, or a file of no certificates (ssl.SSLError)
                    raise _untrusted(exc) from None
                context.set_alpn_protocols(["http/1.1"])  # what httpcore sets on a context without HTTP/2
                self._context = context
            return self._context


def _untrusted(exc: OSError) -> Exception:
    """The certificate authorities cannot be loaded: exit 7 (TLS), naming the variable that points at them."""
    import os

    from lbctl.errors import NetworkError

    named = [f"{name}={os.environ[name]}" for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(name)]
    where = f"from {named[0]}" if named else "(certifi's bundle)"  # httpx reads the first that is set
    reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
    return NetworkError(f"TLS: cannot load the trusted certificate authorities {where}: {reason}",
                        hint="Point SSL_CERT_FILE at a PEM file of certificate authorities, or unset it to use "
                             "lbctl's own (certifi).")


class _DeadlineBackend:
    """httpcore's network backend (its documented extension point), bounded by the thread's deadline."""

    def __init__(self, inner: Any):
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> _DeadlineStream:
        stream = self._inner.connect_tcp(host, port, _bounded(timeout, "ConnectTimeout"), local_address,
                                         socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _bounded(timeout, "ConnectTimeout"),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_transports(client: httpx.Client) -> None:
    # httpx builds its httpcore pools (the direct one and one per proxy from the environment) without a way to
    # pass a network backend, so it is swapped in afterwards; tests/test_hardening_network.py notices if a new
    # httpx moves these attributes.
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            import httpcore

            pool._network_backend = _DeadlineBackend(pool._network_backend or httpcore.SyncBackend())


# --- timeouts ---------------------------------------------------------------------------------------------


def timeouts(seconds: float) -> httpx.Timeout:
    """httpx's timeouts for `--timeout SECONDS`: connecting may take CONNECT_TIMEOUT at most, reading and writing
    the whole `seconds` (which the deadline of RetryingClient also bounds, retries and body included)."""
    return httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds))


def describe_timeout(exc: httpx.TimeoutException) -> tuple[str, str]:
    """What ran out, in words ("could not connect within 5 s"), and a hint that names --timeout."""
    reason = str(exc)
    if reason.startswith("no complete answer"):  # the whole-request deadline (DeadlineExceeded)
        return reason.removesuffix(" (--timeout)"), SLOW_HINT
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect{_within(exc, 'connect')}", CONNECT_HINT
    if isinstance(exc, httpx.WriteTimeout):
        return f"could not send the request{_within(exc, 'write')}", SLOW_HINT
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection{_within(exc, 'pool')}", SLOW_HINT
    return f"no answer{_within(exc, 'read')}", SLOW_HINT


CONNECT_HINT: Final = (f"Check the URL, the network and the proxy variables (HTTPS_PROXY, NO_PROXY): a connection "
                       f"gets {CONNECT_TIMEOUT:g} s (or --timeout SECONDS when that is shorter).")
SLOW_HINT: Final = ("The server took the connection but did not answer in time: try again later, or allow it longer "
                    "with --timeout SECONDS (env LBCTL_TIMEOUT; default 60).")


def _within(exc: httpx.TimeoutException, phase: str) -> str:
    try:
        seconds = exc.request.extensions["timeout"][phase]
    except (RuntimeError, KeyError, TypeError):  # an exception raised without its request
        return ""
    return f" within {seconds:g} s" if isinstance(seconds, (int, float)) else ""


# --- the client -------------------------------------------------------------------------------------------


def _unknown_host(exc: BaseException) -> bool:
    """Whether a connection failed because the host name does not exist (not a temporary DNS failure)."""
    import socket

    permanent = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno in permanent:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _import_httpcore_without_http2() -> None:
    """Import httpcore (httpx does it when its first client is built) without its HTTP/2 support: lbctl speaks
    HTTP/1.1 only, and when h2 is installed (the runtime extra brings it) httpcore imports it and hpack up front,
    16 ms of a command's start. h2 stays importable for anyone else afterwards."""
    import sys

    if "httpcore" in sys.modules or "h2" in sys.modules:
        return
    sys.modules["h2"] = None  # type: ignore[assignment]  # makes `import h2` fail: httpcore then skips HTTP/2
    try:
        import httpcore  # noqa: F401
    finally:
        if sys.modules.get("h2", 0) is None:
            del sys.modules["h2"]


class RetryingClient(httpx.Client):
    """An httpx.Client that retries GET and HEAD on connection errors and server errors, and gives every request,
    retries and body included, at most `deadline` seconds.

    Retrying in `send` rather than in a transport keeps httpx's proxy handling (`trust_env`), which
    a custom transport would switch off. Downloads cut after the headers are not retried here.
    """

    def __init__(self, *, retries: int = 3, backoff: float = 0.5,
                 retry_on: Callable[[httpx.Response], bool] = lambda r: r.status_code in RETRY_STATUSES,
                 deadline: float | None = None, **kwargs: Any):
        if "base_url" in kwargs:  # a URL from a setting, a target or a LangBot answer: refused before httpx sees it
            from lbctl.urls import require

            require(str(kwargs["base_url"]), "URL")
        _import_httpcore_without_http2()
        kwargs.setdefault("headers", {}).setdefault("Accept-Encoding", ACCEPT_ENCODING)
        kwargs.setdefault("verify", DeferredTrust())
        super().__init__(**kwargs)
        self.retries = retries
        self.backoff = backoff
        self.retry_on = retry_on
        self.deadline = deadline
        _bound_transports(self)

    @contextmanager
    def stream(self, method: str, url: Any, **kwargs: Any) -> Iterator[httpx.Response]:  # type: ignore[override]
        with deadline(self.deadline), super().stream(method, url, **kwargs) as response:
            yield response

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with deadline(self.deadline):
            return self._send_retrying(request, **kwargs)

    def _send_retrying(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if request.method not in ("GET", "HEAD"):
            return super().send(request, **kwargs)
        for attempt in range(self.retries):
            try:
                response = super().send(request, **kwargs)
            except RETRY_ERRORS as exc:
                if _unknown_host(exc):
                    raise  # a name that does not resolve will not resolve in a second either: fail as fast as a POST
                _pause(backoff_delay(attempt, self.backoff))
                continue
            if not self.retry_on(response):
                return response
            response.close()
            _pause(retry_after(response) or backoff_delay(attempt, self.backoff))
        return super().send(request, **kwargs)


def _pause(seconds: float) -> None:
    """Sleep before a retry, but never past the deadline (DeadlineExceeded when it has passed)."""
    left = remaining()
    time.sleep(seconds if left is None else min(seconds, left))
    remaining()


def backoff_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry number `attempt + 1`: exponential, at most MAX_BACKOFF."""
    return min(backoff * 2**attempt, MAX_BACKOFF)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF)
    except ValueError:
        return None
