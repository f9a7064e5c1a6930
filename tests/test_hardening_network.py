"""Issue 11, items 1 and 2: hostile servers. Decompression bombs are refused on their decoded size with flat
memory, and `--timeout` is a deadline for the whole request however slowly the server trickles.

The CLI runs as a child process so that its peak memory (VmHWM) and its wall time are its own.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

import pytest

from fakemarket import API, gzip_bomb
from hardening_support import run_cli
from pkgfactory import make_lbpkg

GIB = 1 << 30
MAX_RSS_MB = 100  # lbctl itself peaks at about 35 MB; before the fix one gzip layer took 157 MB, two took 2 GB


@lru_cache(maxsize=None)
def bomb(layers: int) -> bytes:
    return gzip_bomb(GIB, layers)


@pytest.fixture
def market(market):
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    return market


# item 1: decompression bombs -------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(
    ("args", "code"),
    [(("market", "search", "echo"), 8), (("install", "acme/echo"), 8), (("market", "show", "acme/echo"), 8)],
    ids=["search", "install", "show"],
)
def test_a_bomb_as_a_marketplace_answer_is_exit_8_with_flat_memory(market, tmp_path, args, code, layers):
    market.raw_answer = (", ".join(["gzip"] * layers), bomb(layers))

    proc = run_cli(*args, "--json")

    assert proc.exit_code == code, proc.output
    assert "4194304 bytes" in proc.json["errors"][0]["message"] or "4 MiB" in proc.json["errors"][0]["message"]
    assert proc.max_rss_mb < MAX_RSS_MB, proc.output
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("how", ["url", "download"])
def test_a_bomb_as_a_package_is_refused_on_its_decoded_size(market, tmp_path, how):
    # Real answers for the metadata, the bomb for the package itself.
    market.bomb_downloads = ("gzip, gzip", bomb(2))
    if how == "url":
        args = ("install", f"{market.url}{API}/plugins/download/acme/echo/1.0.0")
    else:
        args = ("download", "acme/echo==1.0.0", "-d", str(tmp_path / "out"))

    proc = run_cli(*args, "--json")

    assert proc.exit_code == 2, proc.output
    assert "64 MiB" in proc.json["errors"][0]["message"]
    assert proc.max_rss_mb < MAX_RSS_MB, proc.output
    cached = list((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []
    assert [p for p in cached if p.is_file()] == []


def test_an_unknown_content_encoding_is_exit_8(market):
    market.raw_answer = ("br", b"\x00" * 100)

    proc = run_cli("market", "search", "--json")

    assert proc.exit_code == 8, proc.output
    assert "br" in proc.json["errors"][0]["message"]


def test_a_bomb_from_langbot_is_exit_8_with_flat_memory(market, tmp_path):
    market.raw_answer = ("gzip, gzip", bomb(2))

    proc = run_cli("list", "--target", market.url, "--json", env={"LBCTL_API_KEY": "k"})

    assert proc.exit_code == 8, proc.output
    assert proc.max_rss_mb < MAX_RSS_MB, proc.output


def test_honest_gzip_and_deflate_answers_still_work():
    import gzip as gz
    import zlib

    import respx

    from lbctl.marketplace import MarketplaceClient, make_http

    body = json.dumps({"code": 0, "msg": "ok", "data": {"versions": [{"version": "1.0.0"}]}}).encode()
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    encodings = {"gzip": gz.compress(body), "deflate": zlib.compress(body),
                 "deflate-raw": raw_deflate.compress(body) + raw_deflate.flush(),
                 "gzip, deflate": zlib.compress(gz.compress(body)), "identity": body}
    for name, data in encodings.items():
        header = "deflate" if name == "deflate-raw" else name
        with respx.mock(base_url="https://m.test") as mock:
            mock.get("/api/v1/marketplace/plugins/acme/echo/versions").respond(
                200, content=data, headers={"Content-Encoding": header})
            versions = MarketplaceClient(make_http("https://m.test")).versions("acme", "echo")
            assert mock.calls.last.request.headers["Accept-Encoding"] == "gzip, deflate"
        assert versions == ["1.0.0"], name


# item 2: a whole-request deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.parametrize("args", [("install", "acme/echo"), ("market", "search"), ("download", "acme/echo==1.0.0")],
                         ids=["install", "search", "download"])
def test_a_trickling_marketplace_is_exit_7_when_the_timeout_runs_out(market, tmp_path, phase, args):
    market.trickle, market.trickle_interval = phase, 0.3
    args = (*args, "-d", str(tmp_path / "out")) if args[0] == "download" else args

    proc = run_cli(*args, "--timeout", "2", "--json", timeout=30)

    assert proc.exit_code == 7, proc.output
    assert proc.seconds < 8, proc.output
    assert "timed out" in proc.json["errors"][0]["message"]
    assert not (tmp_path / "home").exists()


def test_a_trickling_download_is_exit_7_when_the_timeout_runs_out(market, tmp_path):
    market.trickle_downloads = 0.3

    proc = run_cli("install", "acme/echo", "--json", env={"LBCTL_TIMEOUT": "2"}, timeout=30)

    assert proc.exit_code == 7, proc.output
    assert proc.seconds < 8, proc.output
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] if (tmp_path / "cache").exists() else []
    assert leftovers == []


def test_a_trickling_langbot_is_exit_7_when_the_timeout_runs_out(market):
    market.trickle, market.trickle_interval = "body", 0.3

    proc = run_cli("list", "--target", market.url, "--timeout", "2", "--json", env={"LBCTL_API_KEY": "k"},
                   timeout=30)

    assert proc.exit_code == 7, proc.output
    assert proc.seconds < 8, proc.output


def test_a_wait_on_a_terminal_shows_a_spinner_and_ends_at_the_timeout(market):
    """Issue 12, item 7: on a terminal nothing waits in silence (rich is imported at the first wait only)."""
    from test_cli_core import run_on_terminal

    market.trickle, market.trickle_interval = "headers", 0.3
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}

    code, text = run_on_terminal("market", "search", "echo", "--timeout", "2", env=env)

    assert code == 7, text
    assert "searching the marketplace" in text, text
    assert "timed out" in text, text
