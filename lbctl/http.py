"""What every HTTP client of lbctl shares: the User-Agent, retries with backoff, and bounded reading."""

from __future__ import annotations

import time
from typing import Any, Callable, Final

import httpx

from lbctl import __version__

USER_AGENT: Final = f"lbctl/{__version__}"
MAX_BACKOFF: Final = 8.0
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_ERRORS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class TooLarge(Exception):
    """An answer exceeded its size limit."""


def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The whole body, refusing to hold more than `limit` bytes."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class RetryingClient(httpx.Client):
    """An httpx.Client that retries GET and HEAD on connection errors and server errors.

    Retrying in `send` rather than in a transport keeps httpx's proxy handling (`trust_env`), which
    a custom transport would switch off. Downloads cut after the headers are not retried here.
    """

    def __init__(self, *, retries: int = 3, backoff: float = 0.5,
                 retry_on: Callable[[httpx.Response], bool] = lambda r: r.status_code in RETRY_STATUSES,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.retries = retries
        self.backoff = backoff
        self.retry_on = retry_on

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if request.method not in ("GET", "HEAD"):
            return super().send(request, **kwargs)
        for attempt in range(self.retries):
            try:
                response = super().send(request, **kwargs)
            except RETRY_ERRORS:
                time.sleep(backoff_delay(attempt, self.backoff))
                continue
            if not self.retry_on(response):
                return response
            response.close()
            time.sleep(retry_after(response) or backoff_delay(attempt, self.backoff))
        return super().send(request, **kwargs)


def backoff_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry number `attempt + 1`: exponential, at most MAX_BACKOFF."""
    return min(backoff * 2**attempt, MAX_BACKOFF)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF)
    except ValueError:
        return None


