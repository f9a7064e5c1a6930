"""A stalled server: connecting fails in seconds, and every timeout error names --timeout (issue 19)."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest
import respx

from lbctl.http import CONNECT_TIMEOUT, DeadlineExceeded, timeouts


@contextmanager
def never_connects() -> Iterator[str]:
    """A loopback address whose connections never complete: the listen queue is full, so the kernel drops every
    further SYN, as a firewall that drops packets does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())  # takes the queue's one place
    try:
        yield "http://%s:%d" % server.getsockname()
    finally:
        filler.close()
        server.close()


@contextmanager
def never_answers() -> Iterator[str]:
    """A loopback server that takes connections (the kernel completes them) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield "http://%s:%d" % server.getsockname()
    finally:
        server.close()


def test_connecting_gets_a_few_seconds_capped_by_the_timeout():
    assert (timeouts(60).connect, timeouts(60).read) == (CONNECT_TIMEOUT, 60)
    assert (timeouts(2).connect, timeouts(2).read) == (2, 2)
    assert 2 <= CONNECT_TIMEOUT <= 10


def test_a_marketplace_that_never_takes_the_connection_fails_in_seconds_not_at_the_timeout(lbctl):
    with never_connects() as url:
        started = time.monotonic()
        result = lbctl("--index-url", url, "market", "search", "weather")  # --timeout is 60 s
        elapsed = time.monotonic() - started

    assert result.exit_code == 7, result.output
    assert CONNECT_TIMEOUT - 0.5 < elapsed < CONNECT_TIMEOUT * 2, elapsed  # one attempt: not retried
    error, hint = result.stderr.splitlines()
    assert error == f"error: The marketplace at {url} timed out: could not connect within {CONNECT_TIMEOUT:g} s"
    assert hint.startswith("hint: Check the URL") and "--timeout" in hint


def test_a_marketplace_that_never_answers_ends_at_the_timeout_with_a_hint_naming_it(lbctl):
    with never_answers() as url:
        started = time.monotonic()
        result = lbctl("--index-url", url, "install", "acme/echo", "--timeout", "1.5")
        elapsed = time.monotonic() - started

    assert result.exit_code == 7, result.output
    assert elapsed < 6, elapsed
    assert result.stderr.splitlines() == [
        f"error: The marketplace at {url} timed out: no answer within 1.5 s",
        "hint: The server took the connection but did not answer in time: try again later, or allow it longer with "
        "--timeout SECONDS (env LBCTL_TIMEOUT; default 60).",
    ]


@pytest.mark.parametrize("stall", [never_connects, never_answers], ids=["connect", "answer"])
def test_a_stalled_langbot_target_names_the_timeout_too(lbctl, monkeypatch, stall):
    monkeypatch.setenv("LBCTL_API_KEY", "k")
    with stall() as url:
        result = lbctl("--target", url, "list", "--timeout", "1", "--json")

    assert result.exit_code == 7, result.output
    error = result.json["errors"][0]
    assert error["message"].startswith(f"LangBot at {url} timed out: ")
    assert error["message"].endswith(" within 1 s")
    assert "--timeout" in error["hint"]


TIMEOUTS = [httpx.ConnectTimeout("timed out"), httpx.ReadTimeout("timed out"), httpx.WriteTimeout("timed out"),
            httpx.PoolTimeout("timed out"), DeadlineExceeded("no complete answer within 60 s (--timeout)")]


@pytest.mark.parametrize("exc", TIMEOUTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("args", [("market", "search", "x"), ("install", "acme/echo"), ("--target", "http://lb.test",
                                                                                         "list")])
def test_every_timeout_error_names_the_timeout_option(lbctl, monkeypatch, exc, args):
    monkeypatch.setenv("LBCTL_API_KEY", "k")
    monkeypatch.setenv("LBCTL_INDEX_URL", "http://market.test")
    with respx.mock:
        respx.route().mock(side_effect=exc)
        result = lbctl(*args, "--json")

    assert result.exit_code == 7, result.output
    error = result.json["errors"][0]
    assert " timed out: " in error["message"] and "(" not in error["message"], error
    assert "--timeout" in error["hint"], error
