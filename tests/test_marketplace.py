from __future__ import annotations

import gzip
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import respx

from fakemarket import FakeMarket
from lbctl import __version__, lbpkg
from lbctl.errors import (
    CredentialsError,
    ExitCode,
    InvalidSpecError,
    NetworkError,
    NotFoundError,
    PackageInvalidError,
    PreconditionError,
    ProtocolError,
    UsageError,
)
from lbctl.http import MAX_BACKOFF, backoff_delay
from lbctl.marketplace import PLUGIN_FIELDS, Fetched, MarketplaceClient, fetch_many, make_http
from pkgfactory import FIXTURE_LBPKG, make_lbpkg

BASE = "https://market.test"
API = "/api/v1/marketplace"
PLUGIN = f"{API}/plugins/acme/echo"
VERSIONS = f"{API}/plugins/acme/echo/versions"
DOWNLOAD = f"{API}/plugins/download/acme/echo/1.0.0"
FIXTURE_SHA256 = "f0c24c3bcc60196a8d92f81a65534f1236c237a9d880cf3208f73005fd9bcb63"


def envelope(data: Any) -> dict:
    return {"code": 0, "msg": "ok", "data": data}


def plugin_info(**overrides: Any) -> dict:
    info = {
        "created_at": "2025-08-10T21:29:28.54938+08:00",
        "updated_at": "2025-08-11T14:17:19.223492+08:00",
        "deleted_at": None,
        "plugin_id": "acme/echo",
        "author": "acme",
        "name": "echo",
        "label": {"en_US": "Echo", "zh_Hans": "", "zh_Hant": "", "ja_JP": ""},
        "description": {"en_US": "Echoes", "zh_Hans": "", "zh_Hant": "", "ja_JP": ""},
        "icon": "plugins/acme/echo/resources/icon.svg",
        "repository": "",
        "tags": None,
        "install_count": 4,
        "latest_version": "1.0.0",
        "status": "live",
    }
    info.update(overrides)
    return info


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture(scope="module")
def client() -> Iterator[MarketplaceClient]:
    # One client for the module: building its TLS context is the slow part of a test.
    with make_http(BASE, retries=2, backoff=0) as http:
        yield MarketplaceClient(http)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("lbctl.http.time.sleep", slept.append)
    return slept


# --- plugin(), versions(): the envelope and the records ------------------------------------------


def test_plugin_returns_the_record(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.get(PLUGIN).respond(json=envelope({"plugin": plugin_info()}))

    assert client.plugin("acme", "echo") == plugin_info()


@pytest.mark.parametrize("field", sorted(PLUGIN_FIELDS))
def test_plugin_without_a_required_field(mock: respx.MockRouter, client: MarketplaceClient, field: str) -> None:
    info = plugin_info()
    del info[field]
    mock.get(PLUGIN).respond(json=envelope({"plugin": info}))

    with pytest.raises(ProtocolError, match=f"data.plugin.{field} is missing") as error:
        client.plugin("acme", "echo")
    assert error.value.exit_code == ExitCode.PROTOCOL == 8


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"install_count": "4"}, "install_count is a string, not an integer"),
        ({"install_count": True}, "install_count is a boolean"),
        ({"label": None}, "label is null, not an object"),
        ({"label": {"en_US": None}}, "label must map languages to strings"),
        ({"tags": "search"}, "tags is a string, not a list or null"),
        ({"tags": [1]}, "tags must be a list of strings"),
        ({"deleted_at": 5}, "deleted_at is an integer, not a string or null"),
        ({"latest_version": None}, "latest_version is null, not a string"),
    ],
)
def test_plugin_with_wrong_types(
    mock: respx.MockRouter, client: MarketplaceClient, overrides: dict, problem: str
) -> None:
    mock.get(PLUGIN).respond(json=envelope({"plugin": plugin_info(**overrides)}))

    with pytest.raises(ProtocolError, match=problem):
        client.plugin("acme", "echo")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>Bad gateway</html>", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "a list, not a JSON object"),
        (b"[" * 100_000, "not JSON"),
        (json.dumps({"plugin": plugin_info()}).encode(), "not the {code, msg, data} envelope"),
        (json.dumps({"code": 0, "msg": "ok"}).encode(), "not the {code, msg, data} envelope"),
        (json.dumps({"code": 1, "msg": "boom", "data": None}).encode(), "code 1: boom"),
        (json.dumps({"code": "0", "msg": "ok", "data": {}}).encode(), "code '0'"),
        (json.dumps({"code": False, "msg": "ok", "data": {}}).encode(), "code False"),
        (json.dumps({"code": 0, "msg": "ok", "data": []}).encode(), "data is a list, not an object"),
        (json.dumps(envelope({})).encode(), "data.plugin is missing"),
        (json.dumps(envelope({"plugin": []})).encode(), "data.plugin is a list, not an object"),
    ],
)
def test_answers_that_are_not_the_envelope(
    mock: respx.MockRouter, client: MarketplaceClient, body: bytes, problem: str
) -> None:
    mock.get(PLUGIN).respond(content=body)

    with pytest.raises(ProtocolError) as error:
        client.plugin("acme", "echo")
    assert problem in error.value.message
    assert f"GET {PLUGIN}" in error.value.message
    assert error.value.hint


def test_unknown_plugin_is_not_found_and_not_retried(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    route = mock.get(PLUGIN).respond(404, json={"code": -1, "msg": "plugin not found"})

    with pytest.raises(NotFoundError) as error:
        client.plugin("acme", "echo")
    assert error.value.exit_code == ExitCode.NOT_FOUND == 5
    assert error.value.plugin == "acme/echo"
    assert "acme/echo" in error.value.message
    assert route.call_count == 1


def test_versions_newest_first_as_served(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    served = [{"version": "0.9.0"}, {"version": "1.0.0", "changelog": "x"}, {"version": "nightly"}]
    mock.get(VERSIONS).respond(json=envelope({"versions": served}))

    assert client.versions("acme", "echo") == ["0.9.0", "1.0.0", "nightly"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "data.versions is missing"),
        ({"versions": None}, "data.versions is null"),
        ({"versions": ["1.0"]}, "no version string"),
        ({"versions": [{"version": 1}]}, "no version string"),
        ({"versions": [{"version": ""}]}, "no version string"),
    ],
)
def test_bad_version_lists(mock: respx.MockRouter, client: MarketplaceClient, data: dict, problem: str) -> None:
    mock.get(VERSIONS).respond(json=envelope(data))

    with pytest.raises(ProtocolError, match=problem):
        client.versions("acme", "echo")


def test_empty_version_list(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.get(VERSIONS).respond(json=envelope({"versions": []}))

    assert client.versions("acme", "echo") == []


def test_oversized_answer(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.get(VERSIONS).respond(content=b" " * (4 * 1024 * 1024 + 1))

    with pytest.raises(ProtocolError, match="exceeds"):
        client.versions("acme", "echo")


@pytest.mark.parametrize(("author", "name"), [("ac me", "echo"), ("acme", "../x"), ("", "echo")])
def test_invalid_ids_are_refused_before_any_request(
    mock: respx.MockRouter, client: MarketplaceClient, author: str, name: str
) -> None:
    with pytest.raises(InvalidSpecError):
        client.versions(author, name)
    assert not mock.calls


# --- status codes, retries, transport errors -----------------------------------------------------


def test_version_not_found_500_is_an_answer(
    mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path
) -> None:
    route = mock.get(DOWNLOAD).respond(500, json={"code": -1, "msg": "plugin version not found: 1.0.0"})

    with pytest.raises(NotFoundError) as error:
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert "acme/echo has no version 1.0.0" in error.value.message
    assert error.value.plugin == "acme/echo"
    assert route.call_count == 1
    assert files_in(tmp_path) == []


def test_other_500s_are_retried_with_a_bound(
    mock: respx.MockRouter, client: MarketplaceClient, no_sleep: list[float]
) -> None:
    route = mock.get(VERSIONS).respond(500, json={"code": -1, "msg": "database down"})

    with pytest.raises(NetworkError, match="HTTP 500: database down") as error:
        client.versions("acme", "echo")
    assert error.value.exit_code == ExitCode.NETWORK == 7
    assert route.call_count == 3


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_transient_statuses_then_success(
    mock: respx.MockRouter, client: MarketplaceClient, no_sleep: list[float], status: int
) -> None:
    ok = httpx.Response(200, json=envelope({"versions": [{"version": "1.0.0"}]}))
    route = mock.get(VERSIONS).mock(side_effect=[httpx.Response(status), httpx.Response(status), ok])

    assert client.versions("acme", "echo") == ["1.0.0"]
    assert route.call_count == 3


def test_connection_errors_are_retried_with_a_bound(
    mock: respx.MockRouter, client: MarketplaceClient, no_sleep: list[float]
) -> None:
    route = mock.get(VERSIONS).mock(side_effect=httpx.ConnectError("connection refused"))

    with pytest.raises(NetworkError, match="cannot connect") as error:
        client.versions("acme", "echo")
    assert error.value.hint and "--offline" in error.value.hint
    assert route.call_count == 3


def test_a_connection_error_then_success(
    mock: respx.MockRouter, client: MarketplaceClient, no_sleep: list[float]
) -> None:
    ok = httpx.Response(200, json=envelope({"versions": [{"version": "1.0.0"}]}))
    route = mock.get(VERSIONS).mock(side_effect=[httpx.RemoteProtocolError("reset"), ok])

    assert client.versions("acme", "echo") == ["1.0.0"]
    assert route.call_count == 2


def test_read_timeouts_are_not_retried(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    route = mock.get(VERSIONS).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(NetworkError, match="timed out"):
        client.versions("acme", "echo")
    assert route.call_count == 1


def test_posts_are_not_retried(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    route = mock.post(f"{API}/extensions/search").respond(503)

    with pytest.raises(NetworkError):
        client.search("echo")
    assert route.call_count == 1


def test_backoff_is_exponential_and_bounded(mock: respx.MockRouter, no_sleep: list[float]) -> None:
    mock.get(VERSIONS).respond(503)
    with make_http(BASE, retries=3, backoff=0.5) as http, pytest.raises(NetworkError):
        MarketplaceClient(http).versions("acme", "echo")

    assert no_sleep == [0.5, 1.0, 2.0]
    assert backoff_delay(20, 0.5) == MAX_BACKOFF


def test_retry_after_is_honoured_up_to_the_bound(mock: respx.MockRouter, no_sleep: list[float]) -> None:
    ok = httpx.Response(200, json=envelope({"versions": []}))
    mock.get(VERSIONS).mock(side_effect=[httpx.Response(503, headers={"Retry-After": "2"}),
                                         httpx.Response(429, headers={"Retry-After": "3600"}), ok])
    with make_http(BASE, retries=3, backoff=0.5) as http:
        MarketplaceClient(http).versions("acme", "echo")

    assert no_sleep == [2.0, MAX_BACKOFF]


def test_redirects_are_not_followed_for_metadata(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.get(PLUGIN).respond(301, headers={"Location": "https://elsewhere.test/x"})

    with pytest.raises(ProtocolError, match="redirect to https://elsewhere.test/x"):
        client.plugin("acme", "echo")


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, ProtocolError), (401, CredentialsError), (403, CredentialsError), (405, ProtocolError),
     (408, NetworkError), (418, ProtocolError)],
)
def test_other_statuses(mock: respx.MockRouter, client: MarketplaceClient, status: int, error: type) -> None:
    mock.get(PLUGIN).respond(status, json={"code": -1, "msg": "nope"})

    with pytest.raises(error, match=f"HTTP {status}: nope"):
        client.plugin("acme", "echo")


def test_user_agent_and_client_defaults(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    route = mock.get(VERSIONS).respond(json=envelope({"versions": []}))

    client.versions("acme", "echo")

    assert route.calls.last.request.headers["User-Agent"] == f"lbctl/{__version__}"
    assert client.index_url == BASE


def test_make_http_settings() -> None:
    with make_http(BASE + "/", timeout=5) as http:
        assert http.trust_env is True
        assert http.follow_redirects is False
        assert http.timeout.read == 5
        assert MarketplaceClient(http).index_url == BASE


def test_index_url_with_a_path_prefix() -> None:
    with respx.mock(assert_all_called=False) as router, make_http("https://host.test/mirror/") as http:
        route = router.get(f"https://host.test/mirror{VERSIONS}").respond(json=envelope({"versions": []}))
        MarketplaceClient(http).versions("acme", "echo")
    assert route.called


@pytest.mark.parametrize("url", ["ftp://host", "host.test", ""])
def test_make_http_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UsageError):
        make_http(url)


# --- search --------------------------------------------------------------------------------------


def search_answer(key: str, items: list[dict], total: int | None = None) -> dict:
    return envelope({key: items, "total": len(items) if total is None else total})


@pytest.mark.parametrize(("sort", "sort_by"), [("installs", "install_count"), ("newest", "created_at"),
                                               ("updated", "updated_at")])
def test_search_body(mock: respx.MockRouter, client: MarketplaceClient, sort: str, sort_by: str) -> None:
    item = {**plugin_info(), "components": {"Tool": 1}}
    route = mock.post(f"{API}/extensions/search").respond(json=search_answer("extensions", [item], 41))

    assert client.search("echo", sort=sort, page=3, page_size=10) == ([item], 41)
    assert json.loads(route.calls.last.request.content) == {
        "query": "echo", "page": 3, "page_size": 10, "sort_by": sort_by, "sort_order": "DESC",
        "type_filter": "plugin",
    }


def test_search_filters(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    route = mock.post(f"{API}/extensions/search").respond(json=search_answer("extensions", []))

    assert client.search("", component="Tool", tags=["search", "web"]) == ([], 0)
    body = json.loads(route.calls.last.request.content)
    assert body["component_filter"] == "Tool" and body["tags_filter"] == ["search", "web"]


def test_search_falls_back_on_404(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.post(f"{API}/extensions/search").respond(404, json={"code": -1, "msg": "not found"})
    fallback = mock.post(f"{API}/plugins/search").respond(json=search_answer("plugins", [plugin_info()]))

    assert client.search("echo") == ([plugin_info()], 1)
    assert json.loads(fallback.calls.last.request.content)["type_filter"] == "plugin"


def test_search_does_not_fall_back_on_other_errors(mock: respx.MockRouter, client: MarketplaceClient) -> None:
    mock.post(f"{API}/extensions/search").respond(400)
    fallback = mock.post(f"{API}/plugins/search")

    with pytest.raises(ProtocolError):
        client.search("echo")
    assert not fallback.called


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"extensions": [], "total": "3"}, "data.total is a string"),
        ({"extensions": []}, "data.total is missing"),
        ({"plugins": [], "total": 0}, "data.extensions is missing"),
        ({"extensions": [{"name": "x"}], "total": 1}, "not a plugin record"),
        ({"extensions": ["acme/echo"], "total": 1}, "not a plugin record"),
    ],
)
def test_bad_search_answers(mock: respx.MockRouter, client: MarketplaceClient, data: dict, problem: str) -> None:
    mock.post(f"{API}/extensions/search").respond(json=envelope(data))

    with pytest.raises(ProtocolError, match=problem):
        client.search("echo")


@pytest.mark.parametrize("kwargs", [{"sort": "hot"}, {"page": 0}, {"page_size": 0}, {"page_size": 101}])
def test_bad_search_arguments(client: MarketplaceClient, kwargs: dict) -> None:
    with pytest.raises(UsageError):
        client.search("echo", **kwargs)


# --- downloads -----------------------------------------------------------------------------------


def test_download_is_content_addressed(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    data = make_lbpkg("acme", "echo", "1.0.0")
    mock.get(DOWNLOAD).respond(content=data)
    progress: list[tuple[int, int | None]] = []

    path, sha256 = client.download("acme", "echo", "1.0.0", dest_dir=tmp_path / "cache",
                                   on_progress=lambda done, total: progress.append((done, total)))

    assert sha256 == hashlib.sha256(data).hexdigest()
    assert path == tmp_path / "cache" / f"{sha256}.lbpkg"
    assert path.read_bytes() == data
    assert files_in(tmp_path / "cache") == [f"{sha256}.lbpkg"]
    assert progress[-1] == (len(data), len(data))


def test_download_into_a_cache_that_has_it(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    data = b"same bytes"
    sha256 = hashlib.sha256(data).hexdigest()
    (tmp_path / f"{sha256}.lbpkg").write_bytes(data)
    mock.get(DOWNLOAD).respond(content=data)

    path, digest = client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)

    assert (path, digest) == (tmp_path / f"{sha256}.lbpkg", sha256)
    assert files_in(tmp_path) == [f"{sha256}.lbpkg"]


def test_verify_runs_before_the_file_enters_the_cache(
    mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path
) -> None:
    data = b"cached bytes"
    cached = tmp_path / f"{hashlib.sha256(data).hexdigest()}.lbpkg"
    cached.write_bytes(data)
    mock.get(DOWNLOAD).respond(content=data)
    seen: list[bytes] = []

    def refuse(path: Path, sha256: str) -> None:
        assert sha256 == hashlib.sha256(data).hexdigest()
        seen.append(path.read_bytes())
        raise PackageInvalidError("not the package that was asked for")

    with pytest.raises(PackageInvalidError):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path, verify=refuse)
    assert seen == [data]
    assert files_in(tmp_path) == [cached.name] and cached.read_bytes() == data


def test_verify_accepts(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).respond(content=b"fine")

    path, _ = client.download("acme", "echo", "1.0.0", dest_dir=tmp_path, verify=lambda p, sha: None)

    assert files_in(tmp_path) == [path.name]


def test_content_length_over_the_limit_fails_before_reading(
    mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path
) -> None:
    read = threading.Event()

    def body() -> Iterator[bytes]:
        read.set()
        yield b"x" * 1000

    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, headers={"Content-Length": "1000"}, content=body()))

    with pytest.raises(PackageInvalidError, match="larger than the limit of 100 bytes") as error:
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path, max_bytes=100)
    assert error.value.exit_code == ExitCode.BAD_INPUT
    assert not read.is_set()
    assert files_in(tmp_path) == []


def test_body_over_the_limit_without_content_length(
    mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path
) -> None:
    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, content=iter([b"x" * 60, b"x" * 60])))

    with pytest.raises(PackageInvalidError):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path, max_bytes=100)
    assert files_in(tmp_path) == []


def test_default_limit_is_64_mib(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    headers = {"Content-Length": str(64 * 1024 * 1024 + 1)}
    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, headers=headers, content=iter([b""])))

    with pytest.raises(PackageInvalidError, match="64 MiB"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)


def test_shorter_than_content_length(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, headers={"Content-Length": "100"}, content=b"abc"))

    with pytest.raises(NetworkError, match="cut short: 3 of 100 bytes") as error:
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert error.value.exit_code == ExitCode.NETWORK
    assert files_in(tmp_path) == []


def test_longer_than_content_length(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, headers={"Content-Length": "2"}, content=b"abc"))

    with pytest.raises(ProtocolError, match="announced 2"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_invalid_content_length(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, headers={"Content-Length": "-1"}, content=b"abc"))

    with pytest.raises(ProtocolError, match="Content-Length"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_connection_cut_mid_body(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    def body() -> Iterator[bytes]:
        yield b"x" * 100
        raise httpx.ReadError("connection reset by peer")

    mock.get(DOWNLOAD).mock(return_value=httpx.Response(200, content=body()))

    with pytest.raises(NetworkError, match="connection was cut"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_interrupt_removes_the_partial_file(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).respond(content=b"x" * 100)

    def interrupt(done: int, total: int | None) -> None:
        assert files_in(tmp_path) != []
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path, on_progress=interrupt)
    assert files_in(tmp_path) == []


def test_gzip_encoded_download(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    data = make_lbpkg("acme", "echo", "1.0.0")
    mock.get(DOWNLOAD).respond(content=gzip.compress(data), headers={"Content-Encoding": "gzip"})

    path, sha256 = client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)

    assert path.read_bytes() == data and sha256 == hashlib.sha256(data).hexdigest()


def test_download_is_retried_before_the_body(
    mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path, no_sleep: list[float]
) -> None:
    route = mock.get(DOWNLOAD).mock(side_effect=[httpx.Response(503), httpx.Response(200, content=b"pkg")])

    path, _ = client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)

    assert path.read_bytes() == b"pkg" and route.call_count == 2


def test_download_of_an_unknown_plugin(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    mock.get(DOWNLOAD).respond(404, json={"code": -1, "msg": "plugin not found"})

    with pytest.raises(NotFoundError, match="acme/echo 1.0.0 is not on the marketplace"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("version", ["", "1.0/../x", "1 0", "1.0?x"])
def test_download_refuses_odd_versions(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path,
                                       version: str) -> None:
    with pytest.raises(InvalidSpecError):
        client.download("acme", "echo", version, dest_dir=tmp_path)
    assert not mock.calls


def test_unwritable_destination(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    route = mock.get(DOWNLOAD).respond(content=b"pkg")

    with pytest.raises(PreconditionError, match="Cannot write"):
        client.download("acme", "echo", "1.0.0", dest_dir=tmp_path / "file" / "cache")
    assert not route.called


def test_download_url_follows_redirects(mock: respx.MockRouter, client: MarketplaceClient, tmp_path: Path) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get("https://github.test/p.lbpkg").respond(302, headers={"Location": "https://cdn.test/p"})
        router.get("https://cdn.test/p").respond(content=b"package")
        path, sha256 = client.download_url("https://github.test/p.lbpkg", dest_dir=tmp_path)

    assert path.read_bytes() == b"package" and sha256 == hashlib.sha256(b"package").hexdigest()


@pytest.mark.parametrize(("status", "error"), [(404, NotFoundError), (410, NotFoundError),
                                               (403, CredentialsError), (400, ProtocolError)])
def test_download_url_errors(client: MarketplaceClient, tmp_path: Path, status: int, error: type) -> None:
    with respx.mock() as router:
        router.get("https://files.test/p.lbpkg").respond(status)
        with pytest.raises(error, match="files.test"):
            client.download_url("https://files.test/p.lbpkg", dest_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_download_url_needs_http(client: MarketplaceClient, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError):
        client.download_url("file:///etc/passwd", dest_dir=tmp_path)


# --- against the fake marketplace ----------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeMarket]:
    with FakeMarket() as market:
        yield market


@pytest.fixture
def fclient(fake: FakeMarket) -> Iterator[MarketplaceClient]:
    with make_http(fake.url, retries=2, backoff=0) as http:
        yield MarketplaceClient(http)


def test_fake_plugin_detail_has_every_field(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0", label="Echo"), install_count=7, tags=["util"])
    fake.add(make_lbpkg("acme", "echo", "1.1.0", label="Echo"), install_count=7, tags=["util"])

    info = fclient.plugin("acme", "echo")

    assert set(PLUGIN_FIELDS) <= set(info)
    assert (info["plugin_id"], info["latest_version"], info["install_count"]) == ("acme/echo", "1.1.0", 7)
    assert info["label"]["en_US"] == "Echo" and info["tags"] == ["util"]


def test_fake_versions_are_newest_first_in_publish_order(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    for version in ("1.0.0", "2.0.0", "1.5.0"):
        fake.add(make_lbpkg("acme", "echo", version))

    assert fclient.versions("acme", "echo") == ["1.5.0", "2.0.0", "1.0.0"]


def test_fake_serves_the_real_fixture(fake: FakeMarket, fclient: MarketplaceClient, tmp_path: Path) -> None:
    fake.add(FIXTURE_LBPKG.read_bytes())

    path, sha256 = fclient.download("lbctl-tests", "hello", "0.1.0", dest_dir=tmp_path)

    assert sha256 == FIXTURE_SHA256
    assert path == tmp_path / f"{FIXTURE_SHA256}.lbpkg"
    assert lbpkg.read_file(path).id == "lbctl-tests/hello"


def test_fake_truncated_download_leaves_nothing(fake: FakeMarket, fclient: MarketplaceClient, tmp_path: Path) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))
    fake.truncate_downloads = True

    with pytest.raises(NetworkError) as error:
        fclient.download("acme", "echo", "1.0.0", dest_dir=tmp_path)
    assert error.value.exit_code == ExitCode.NETWORK
    assert files_in(tmp_path) == []


def test_fake_unknown_version_is_not_retried(fake: FakeMarket, fclient: MarketplaceClient, tmp_path: Path) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))

    with pytest.raises(NotFoundError, match="no version 9.9.9"):
        fclient.download("acme", "echo", "9.9.9", dest_dir=tmp_path)
    assert fake.paths() == [f"{API}/plugins/download/acme/echo/9.9.9"]


def test_fake_unknown_plugin(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    with pytest.raises(NotFoundError, match="No plugin named acme/nothing"):
        fclient.versions("acme", "nothing")


@pytest.mark.parametrize(("mode", "problem"), [("notjson", "not JSON"), ("noenvelope", "envelope"),
                                               ("code", "code 1: internal failure"), ("types", "data.plugin")])
def test_fake_broken_answers(fake: FakeMarket, fclient: MarketplaceClient, mode: str, problem: str) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))
    fake.broken = mode

    with pytest.raises(ProtocolError, match=problem):
        fclient.plugin("acme", "echo")


def test_fake_mcp_and_skill_lookups_are_404(fake: FakeMarket) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))
    with httpx.Client(base_url=fake.url) as http:
        for kind in ("mcps", "skills"):
            response = http.get(f"{API}/{kind}/acme/echo")
            assert response.status_code == 404 and response.json()["code"] == -1


def test_fake_search(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0", commands=["ping"]), install_count=5, tags=["util"])
    fake.add(make_lbpkg("acme", "weather", "1.0.0", description="Forecasts"), install_count=50)
    fake.add(make_lbpkg("bob", "echo-two", "0.1.0", tools=()), install_count=1)

    assert [p["name"] for p in fclient.search("echo")[0]] == ["echo", "echo-two"]
    assert [p["name"] for p in fclient.search("")[0]] == ["weather", "echo", "echo-two"]
    assert [p["name"] for p in fclient.search("", sort="newest")[0]] == ["echo-two", "weather", "echo"]
    assert [p["name"] for p in fclient.search("forecast")[0]] == ["weather"]
    assert [p["name"] for p in fclient.search("", component="Command")[0]] == ["echo"]
    assert [p["name"] for p in fclient.search("", tags=["util"])[0]] == ["echo"]
    last = fake.listing("bob/echo-two")
    assert last is not None and fclient.search("", page=2, page_size=2) == ([last.v4()], 3)
    assert fake.paths("POST") == [f"{API}/extensions/search"] * 7


def test_fake_search_fallback(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))
    fake.unified_search = False

    items, total = fclient.search("echo")

    assert [p["plugin_id"] for p in items] == ["acme/echo"] and total == 1
    assert fake.paths("POST") == [f"{API}/extensions/search", f"{API}/plugins/search"]


def test_fake_list_route(fake: FakeMarket) -> None:
    for n in range(5):
        fake.add(make_lbpkg("acme", f"p{n}", "1.0.0"), install_count=n)
    with httpx.Client(base_url=fake.url) as http:
        data = http.get(f"{API}/plugins", params={"page": 1, "page_size": 2}).json()["data"]

    assert data["total"] == 5 and [p["name"] for p in data["plugins"]] == ["p4", "p3"]


def test_fake_retries_on_503_and_dropped_connections(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))
    fake.fail_requests = 1
    fake.drop_requests = 1

    assert fclient.versions("acme", "echo") == ["1.0.0"]
    assert len(fake.requests) == 3


def test_fake_retries_are_bounded(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.drop_requests = 10

    with pytest.raises(NetworkError):
        fclient.versions("acme", "echo")
    assert len(fake.requests) == 3


def test_fake_sees_the_user_agent(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    fake.add(make_lbpkg("acme", "echo", "1.0.0"))

    fclient.versions("acme", "echo")

    assert fake.headers[-1]["user-agent"] == f"lbctl/{__version__}"


def test_fake_serves_hostile_bytes(fake: FakeMarket, fclient: MarketplaceClient, tmp_path: Path) -> None:
    fake.add_raw("acme", "evil", "1.0.0", b"PK\x03\x04 not really a zip")

    path, _ = fclient.download("acme", "evil", "1.0.0", dest_dir=tmp_path)

    with pytest.raises(PackageInvalidError):
        lbpkg.read_file(path)


# --- fetch_many ----------------------------------------------------------------------------------


def test_fetch_many_runs_concurrently_and_keeps_order(fake: FakeMarket, fclient: MarketplaceClient) -> None:
    names = [f"p{n}" for n in range(12)]
    for name in names:
        fake.add(make_lbpkg("acme", name, "1.0.0"))
    fake.latency = 0.25

    results = fetch_many(names + ["missing"], lambda name: fclient.versions("acme", name))

    assert fake.max_in_flight >= 6
    assert [r.item for r in results] == names + ["missing"]
    assert all(r.ok and r.value == ["1.0.0"] for r in results[:-1])
    assert isinstance(results[-1].error, NotFoundError) and results[-1].value is None


def test_fetch_many_small_inputs() -> None:
    assert fetch_many([], str) == []
    assert fetch_many([1], str) == [Fetched(1, value="1")]


def test_fetch_many_lets_bugs_through() -> None:
    with pytest.raises(ZeroDivisionError):
        fetch_many([1, 0, 2], lambda n: 1 // n)


# --- TLS -------------------------------------------------------------------------------------------------

TLS = Path(__file__).parent / "tls"  # a self-signed certificate for 127.0.0.1, made for these tests


@pytest.fixture
def https_market() -> Iterator[str]:
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Versions(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"code": 0, "msg": "ok", "data": {"versions": [{"version": "1.0.0"}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Versions)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tls_is_verified_against_the_trusted_authorities_only(https_market, monkeypatch):
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        MarketplaceClient(make_http(https_market, retries=1, backoff=0)).versions("acme", "echo")

    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "localhost.pem"))  # as httpx reads it: the authority is trusted
    assert MarketplaceClient(make_http(https_market, retries=1, backoff=0)).versions("acme", "echo") == ["1.0.0"]
