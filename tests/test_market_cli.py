"""Issue 3 at the CLI level: install/download/outdated/update/market against a real (local) marketplace.

Every test drives the real CLI in-process (`lbctl` fixture) against FakeMarket over real HTTP, except the
few that need a URL FakeMarket has no route for (respx fakes those at the httpx transport).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import respx

from conftest import tree_snapshot
from fakemarket import API, FakeMarket
from lbctl import __version__
from pkgfactory import make_lbpkg

DOWNLOAD_PREFIX = f"{API}/plugins/download/"


# fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def publish(market: FakeMarket, plugin_id: str, *versions: str, **kwargs) -> None:
    """Publish real packages of `plugin_id`, oldest first (the last one is the newest release)."""
    author, name = plugin_id.split("/")
    for version in versions:
        market.add(make_lbpkg(author, name, version, **kwargs))


def ok(run, code: int = 0):
    assert run.exit_code == code, run.output
    return run


def installed(lbctl, *extra: str) -> dict[str, dict]:
    """id -> list row of everything installed."""
    doc = ok(lbctl("list", "--json", *extra)).json
    return {p["id"]: p for p in doc["data"]["plugins"]}


def provenance(lbctl, plugin_id: str, *extra: str) -> dict:
    return ok(lbctl("show", plugin_id, "--json", *extra)).json["data"]["plugin"]


def downloads(market: FakeMarket) -> list[str]:
    return [p for p in market.paths("GET") if p.startswith(DOWNLOAD_PREFIX)]


def files_under(root: Path) -> list[str]:
    """Every file below root (hidden ones included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def actions_by_id(doc: dict) -> dict[str, dict]:
    return {a["id"]: a for a in doc["data"]["actions"]}


# spec forms (spec §2) ---------------------------------------------------------------------------------------


@pytest.fixture
def echo(market):
    """acme/echo with 1.0.0, 1.1.0 and the pre-release 2.0.0b1 (published last, so listed first)."""
    publish(market, "acme/echo", "1.0.0", "1.1.0", "2.0.0b1")
    return market


@pytest.mark.parametrize(
    ("args", "version"),
    [
        (["acme/echo"], "1.1.0"),  # newest final release; the newer pre-release is skipped
        (["acme/echo==1.0.0"], "1.0.0"),
        (["acme/echo@1.0.0"], "1.0.0"),
        (["acme/echo>=1.0,<2"], "1.1.0"),
        (["acme/echo>=1.0,<1.1"], "1.0.0"),
        (["acme/echo~=1.0"], "1.1.0"),
        (["acme/echo!=1.1.0"], "1.0.0"),
        (["acme/echo", "--pre"], "2.0.0b1"),
        (["acme/echo==2.0.0b1"], "2.0.0b1"),  # named exactly: no --pre needed
        (["acme/echo@2.0.0b1"], "2.0.0b1"),
        (["acme/echo>=2.0.0b1"], "2.0.0b1"),  # the specifier names a pre-release
    ],
)
def test_install_spec_forms(lbctl, echo, args, version):
    doc = ok(lbctl("install", *args, "--json")).json

    [action] = doc["data"]["actions"]
    assert (action["id"], action["action"], action["to"], action["source"], action["status"]) == (
        "acme/echo", "install", version, "marketplace", "done")
    assert installed(lbctl)["acme/echo"]["version"] == version
    assert downloads(echo) == [f"{DOWNLOAD_PREFIX}acme/echo/{version}"]


def test_install_pre_release_only_plugin_needs_pre(lbctl, market, home, cache):
    publish(market, "acme/beta", "0.1.0a1")
    before = tree_snapshot(home, cache)

    run = lbctl("install", "acme/beta", "--json")

    assert run.exit_code == 5, run.output
    assert "--pre" in (run.json["errors"][0]["hint"] or "")
    assert tree_snapshot(home, cache) == before
    ok(lbctl("install", "acme/beta", "--pre"))
    assert installed(lbctl)["acme/beta"]["version"] == "0.1.0a1"


def test_install_several_marketplace_specs_at_once(lbctl, market):
    publish(market, "acme/one", "1.0.0", "1.1.0")
    publish(market, "acme/two", "2.0.0")

    doc = ok(lbctl("install", "acme/one==1.0.0", "acme/two", "--json")).json

    assert {a["id"]: a["to"] for a in doc["data"]["actions"]} == {"acme/one": "1.0.0", "acme/two": "2.0.0"}


def test_install_url_spec_from_the_market_host(lbctl, market):
    publish(market, "acme/echo", "1.0.0")
    url = f"{market.url}{DOWNLOAD_PREFIX}acme/echo/1.0.0"

    doc = ok(lbctl("install", url, "--json")).json

    [action] = doc["data"]["actions"]
    assert (action["id"], action["to"], action["source"]) == ("acme/echo", "1.0.0", "url")
    shown = provenance(lbctl, "acme/echo")
    assert (shown["source"], shown["origin"], shown["spec"]) == ("url", url, url)
    assert installed(lbctl)["acme/echo"]["source"] == "url"


def test_install_url_spec_ending_in_lbpkg(lbctl, monkeypatch):
    package = make_lbpkg("acme", "remote", "0.3.0")
    url = "https://files.example.test/releases/acme-remote-0.3.0.lbpkg"
    monkeypatch.setenv("LBCTL_INDEX_URL", "https://market.example.test")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(url).respond(200, content=package, headers={"Content-Type": "application/octet-stream"})
        run = lbctl("install", url, "--json")
    assert run.exit_code == 0, run.output
    assert route.calls.last.request.headers["user-agent"].startswith("lbctl/")
    shown = provenance(lbctl, "acme/remote")
    assert (shown["source"], shown["origin"], shown["version"]) == ("url", url, "0.3.0")
    assert shown["sha256"] == hashlib.sha256(package).hexdigest()


def test_install_url_spec_not_found_is_exit_5(lbctl, home, cache, monkeypatch):
    url = "https://files.example.test/gone.lbpkg"
    monkeypatch.setenv("LBCTL_INDEX_URL", "https://market.example.test")
    with respx.mock:
        respx.get(url).respond(404)
        run = lbctl("install", url, "--json")
    assert run.exit_code == 5, run.output
    assert files_under(home) == [] and files_under(cache) == []


# refusals that change nothing -------------------------------------------------------------------------------


@pytest.fixture
def populated(lbctl, market, home):
    """A home with one marketplace install (acme/base 1.0.0), so snapshots are not trivially empty."""
    publish(market, "acme/base", "1.0.0")
    ok(lbctl("install", "acme/base"))
    return home


@pytest.mark.parametrize("spec", ["acme/nope", "nobody/echo==1.0.0", "acme/nope@1.0.0"])
def test_unknown_plugin_is_exit_5_and_changes_nothing(lbctl, market, populated, cache, spec):
    before = tree_snapshot(populated, cache)

    run = lbctl("install", spec, "--json")

    assert run.exit_code == 5, run.output
    assert run.json["status"] == "error" and run.json["errors"][0]["code"] == "not_found"
    assert tree_snapshot(populated, cache) == before


@pytest.mark.parametrize("spec", ["acme/base==9.9.9", "acme/base@2.0.0", "acme/base>=2", "acme/base<1"])
def test_unknown_version_is_exit_5_and_changes_nothing(lbctl, market, populated, cache, spec):
    before = tree_snapshot(populated, cache)

    run = lbctl("install", spec, "--json")

    assert run.exit_code == 5, run.output
    assert "1.0.0" in (run.json["errors"][0]["hint"] or ""), "the hint lists what is available"
    assert tree_snapshot(populated, cache) == before
    assert downloads(market) == [f"{DOWNLOAD_PREFIX}acme/base/1.0.0"]  # only the fixture's own install


def test_one_bad_spec_installs_nothing_of_the_batch(lbctl, market, populated, cache):
    publish(market, "acme/good", "1.0.0")
    before = tree_snapshot(populated)

    run = lbctl("install", "acme/good", "acme/missing", "--json")

    assert run.exit_code == 5, run.output
    assert tree_snapshot(populated) == before  # the cache may keep the good, verified download (like pip)
    assert not [f for f in files_under(cache) if f.endswith(".part")]
    assert "acme/good" not in installed(lbctl)


@pytest.mark.parametrize(
    ("served", "asked"),
    [
        (("acme", "other", "1.0.0"), "acme/echo"),  # another name
        (("evil", "echo", "1.0.0"), "acme/echo"),  # another author
        (("acme", "echo", "0.9.0"), "acme/echo"),  # another version
        (("acme", "echo", "0.9.0"), "acme/echo==1.0.0"),
    ],
)
def test_package_that_is_not_what_was_asked_is_exit_2(lbctl, market, populated, cache, served, asked):
    market.add_raw("acme", "echo", "1.0.0", make_lbpkg(*served))
    before = tree_snapshot(populated, cache)

    run = lbctl("install", asked, "--json")

    assert run.exit_code == 2, run.output
    assert run.json["errors"][0]["code"] == "package_mismatch"
    assert "acme/echo" not in installed(lbctl)
    assert tree_snapshot(populated, cache) == before, "nothing of the wrong package stays in the cache"


def test_hostile_bytes_from_the_market_are_exit_2(lbctl, market, populated, cache):
    market.add_raw("acme", "echo", "1.0.0", b"PK\x03\x04 this is not a zip at all")
    before = tree_snapshot(populated, cache)

    run = lbctl("install", "acme/echo", "--json")

    assert run.exit_code == 2, run.output
    assert tree_snapshot(populated, cache) == before


def test_mismatched_package_identical_to_a_cached_one_does_not_evict_it(lbctl, market, home, cache):
    """The market serves acme/echo 1.0.0's exact bytes as "2.0.0". Refusing it must not delete the good
    cached 1.0.0 (same bytes, same content address): spec §7 says the cache is left unchanged."""
    good = make_lbpkg("acme", "echo", "1.0.0")
    market.add(good)
    ok(lbctl("install", "acme/echo"))
    market.add_raw("acme", "echo", "2.0.0", good)
    before = tree_snapshot(home, cache)

    run = lbctl("install", "acme/echo==2.0.0", "--json")

    assert run.exit_code == 2, run.output
    assert tree_snapshot(home, cache) == before
    # and the cached 1.0.0 still serves an offline install
    ok(lbctl("--offline", "--home", str(home.parent / "other"), "install", "acme/echo==1.0.0"))


def test_truncated_download_is_exit_7_and_leaves_no_partial_file(lbctl, market, populated, cache):
    publish(market, "acme/echo", "1.0.0", extra_files={"data/blob.bin": b"x" * 300_000})
    market.truncate_downloads = True
    before = tree_snapshot(populated, cache)

    run = lbctl("install", "acme/echo", "--json")

    assert run.exit_code == 7, run.output
    assert run.json["errors"][0]["code"] == "network"
    assert tree_snapshot(populated, cache) == before
    assert not [f for f in files_under(cache) if f.endswith(".part") or "download" in f]


def test_truncated_download_with_no_cache_is_exit_7(lbctl, market, home, cache):
    publish(market, "acme/echo", "1.0.0")
    market.truncate_downloads = True

    run = lbctl("install", "acme/echo", "--no-cache", "--json")

    assert run.exit_code == 7, run.output
    assert files_under(home) == [] and files_under(cache) == []


@pytest.mark.parametrize("broken", ["notjson", "noenvelope", "code"])
@pytest.mark.parametrize(
    "args",
    [("install", "acme/echo"), ("install", "acme/echo==1.0.0"), ("market", "search", "echo"),
     ("market", "show", "acme/echo"), ("download", "acme/echo", "-d", "out")],
)
def test_broken_market_answers_are_exit_8(lbctl, market, home, cache, tmp_path, broken, args):
    publish(market, "acme/echo", "1.0.0")
    market.broken = broken
    args = tuple(str(tmp_path / a) if a == "out" else a for a in args)

    run = lbctl(*args, "--json")

    assert run.exit_code == 8, run.output
    assert run.json["status"] == "error" and run.json["errors"][0]["code"] == "protocol"
    assert files_under(home) == [] and files_under(cache) == []
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


def test_unreachable_market_is_exit_7(lbctl, home, monkeypatch):
    with FakeMarket() as gone:
        url = gone.url
    monkeypatch.setenv("LBCTL_INDEX_URL", url)  # the port is closed now

    run = lbctl("install", "acme/echo", "--json")

    assert run.exit_code == 7, run.output
    assert files_under(home) == []


# the cache, --no-cache, --offline, --find-links -------------------------------------------------------------


def test_cache_hit_makes_no_second_download(lbctl, market, tmp_path, cache):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))
    assert len(downloads(market)) == 1
    assert any(f.endswith(".lbpkg") for f in files_under(cache))

    ok(lbctl("--home", str(tmp_path / "fresh"), "install", "acme/echo"))

    assert len(downloads(market)) == 1, market.requests
    assert provenance(lbctl, "acme/echo", "--home", str(tmp_path / "fresh"))["source"] == "marketplace"


def test_cache_hit_for_an_exact_version(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0", "1.1.0")
    ok(lbctl("install", "acme/echo==1.0.0"))

    ok(lbctl("--home", str(tmp_path / "fresh"), "install", "acme/echo@1.0.0"))
    ok(lbctl("--home", str(tmp_path / "fresh2"), "install", "acme/echo"))  # newest is not cached

    assert downloads(market) == [f"{DOWNLOAD_PREFIX}acme/echo/1.0.0", f"{DOWNLOAD_PREFIX}acme/echo/1.1.0"]


def test_no_cache_downloads_every_time_and_writes_no_cache(lbctl, market, tmp_path, cache):
    publish(market, "acme/echo", "1.0.0")

    ok(lbctl("--no-cache", "install", "acme/echo"))
    ok(lbctl("--home", str(tmp_path / "fresh"), "install", "acme/echo", "--no-cache"))

    assert len(downloads(market)) == 2
    assert files_under(cache) == []
    assert installed(lbctl)["acme/echo"]["version"] == "1.0.0"


def test_no_cache_ignores_an_existing_cache(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))

    ok(lbctl("--no-cache", "--home", str(tmp_path / "fresh"), "install", "acme/echo"))

    assert len(downloads(market)) == 2


def test_offline_installs_from_the_cache_with_zero_requests(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0", "1.1.0")
    ok(lbctl("install", "acme/echo"))
    seen = len(market.requests)
    fresh = str(tmp_path / "fresh")

    doc = ok(lbctl("--offline", "--home", fresh, "install", "acme/echo", "--json")).json

    assert len(market.requests) == seen, market.requests[seen:]
    assert doc["data"]["actions"][0]["to"] == "1.1.0"
    shown = provenance(lbctl, "acme/echo", "--home", fresh)
    assert (shown["source"], shown["version"], shown["spec"]) == ("marketplace", "1.1.0", "acme/echo")


def test_offline_from_the_environment_variable(lbctl, market, tmp_path, monkeypatch):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))
    seen = len(market.requests)
    monkeypatch.setenv("LBCTL_OFFLINE", "1")

    ok(lbctl("--home", str(tmp_path / "fresh"), "install", "acme/echo"))

    assert len(market.requests) == seen


def test_offline_installs_from_find_links_with_zero_requests(lbctl, market, tmp_path, home, cache):
    links = tmp_path / "links"
    links.mkdir()
    (links / "acme-echo-1.0.0.lbpkg").write_bytes(make_lbpkg("acme", "echo", "1.0.0"))
    (links / "acme-echo-1.2.0.lbpkg").write_bytes(make_lbpkg("acme", "echo", "1.2.0"))
    (links / "junk.lbpkg").write_bytes(b"not a package")  # ignored
    (links / "acme-other-9.0.0.lbpkg").write_bytes(make_lbpkg("acme", "other", "9.0.0"))

    doc = ok(lbctl("--offline", "--find-links", str(links), "install", "acme/echo", "--json")).json
    exact = ok(lbctl("--offline", "--find-links", str(links), "--home", str(tmp_path / "h2"),
                     "install", "acme/echo==1.0.0", "--json")).json

    assert market.requests == []
    assert doc["data"]["actions"][0]["to"] == "1.2.0"
    assert exact["data"]["actions"][0]["to"] == "1.0.0"
    shown = provenance(lbctl, "acme/echo")
    assert (shown["source"], shown["version"], shown["spec"]) == ("marketplace", "1.2.0", "acme/echo")


def test_find_links_from_the_environment_variable(lbctl, market, tmp_path, monkeypatch):
    links = tmp_path / "links"
    links.mkdir()
    (links / "p.lbpkg").write_bytes(make_lbpkg("acme", "echo", "1.0.0"))
    monkeypatch.setenv("LBCTL_FIND_LINKS", str(links))

    ok(lbctl("--offline", "install", "acme/echo"))

    assert market.requests == []


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_find_links_path_that_is_no_directory_is_exit_5_not_ignored(lbctl, market, tmp_path, home, cache, kind):
    publish(market, "acme/echo", "1.0.0")
    links = tmp_path / "links"
    if kind == "file":
        links.write_bytes(make_lbpkg("acme", "echo", "1.0.0"))

    run = lbctl("--find-links", str(links), "install", "acme/echo", "--json")

    assert run.exit_code == 5, run.output
    problem = "no such directory" if kind == "missing" else "not a directory"
    assert run.json["errors"][0]["message"] == f"--find-links {links}: {problem}"
    assert market.requests == []  # refused before anything was downloaded in its place
    assert files_under(home) == []


def test_a_find_links_path_that_cannot_be_read_is_exit_6(lbctl, market, tmp_path, home):
    links = tmp_path / "links"
    links.symlink_to(links)  # a loop: there, but no directory can be read through it (also as root)

    run = lbctl("--find-links", str(links), "install", "acme/echo", "--json")

    assert run.exit_code == 6, run.output
    assert run.json["errors"][0]["message"] == f"--find-links {links}: Too many levels of symbolic links"
    assert market.requests == []


def test_offline_with_a_mismatched_find_links_version_is_exit_5(lbctl, market, tmp_path, home, cache):
    links = tmp_path / "links"
    links.mkdir()
    (links / "p.lbpkg").write_bytes(make_lbpkg("acme", "echo", "1.0.0"))

    run = lbctl("--offline", "--find-links", str(links), "install", "acme/echo==2.0.0", "--json")

    assert run.exit_code == 5, run.output
    assert market.requests == []
    assert files_under(home) == [] and files_under(cache) == []


def test_offline_with_nothing_cached_is_exit_5(lbctl, market, home, cache):
    publish(market, "acme/echo", "1.0.0")

    run = lbctl("--offline", "install", "acme/echo", "--json")

    assert run.exit_code == 5, run.output
    assert run.json["errors"][0]["hint"]
    assert market.requests == []
    assert files_under(home) == [] and files_under(cache) == []


def test_download_then_offline_install_round_trip(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0", "1.1.0")
    publish(market, "acme/other", "0.2.0")
    out = tmp_path / "wheelhouse"

    doc = ok(lbctl("download", "acme/echo", "acme/other==0.2.0", "-d", str(out), "--json")).json

    files = {f["id"]: f for f in doc["data"]["files"]}
    assert set(files) == {"acme/echo", "acme/other"}
    echo = files["acme/echo"]
    assert (echo["version"], Path(echo["path"])) == ("1.1.0", out / "acme-echo-1.1.0.lbpkg")
    assert Path(files["acme/other"]["path"]) == out / "acme-other-0.2.0.lbpkg"
    for entry in files.values():
        assert hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    assert sorted(p.name for p in out.iterdir()) == ["acme-echo-1.1.0.lbpkg", "acme-other-0.2.0.lbpkg"]
    assert installed(lbctl) == {}, "download installs nothing"

    seen = len(market.requests)
    ok(lbctl("--offline", "--no-cache", "--find-links", str(out), "install", "acme/echo", "acme/other"))
    assert len(market.requests) == seen
    assert {k: v["version"] for k, v in installed(lbctl).items()} == {"acme/echo": "1.1.0", "acme/other": "0.2.0"}


def test_download_table_output_and_default_pre_handling(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0", "2.0.0rc1")

    run = ok(lbctl("download", "acme/echo", "-d", str(tmp_path / "d")))
    pre = ok(lbctl("download", "acme/echo", "--pre", "-d", str(tmp_path / "d"), "--json"))

    assert "acme/echo" in run.stdout and "1.0.0" in run.stdout
    assert pre.json["data"]["files"][0]["version"] == "2.0.0rc1"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["acme-echo-1.0.0.lbpkg", "acme-echo-2.0.0rc1.lbpkg"]


def test_download_of_an_unknown_plugin_writes_nothing(lbctl, market, tmp_path):
    run = lbctl("download", "acme/nope", "-d", str(tmp_path / "d"), "--json")

    assert run.exit_code == 5, run.output
    assert files_under(tmp_path / "d") == []


# provenance -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["acme/echo", "acme/echo>=1.0,<2", "acme/echo@1.1.0", "acme/echo==1.1.0"])
def test_install_records_provenance(lbctl, market, spec):
    publish(market, "acme/echo", "1.0.0", "1.1.0")

    ok(lbctl("install", spec))

    shown = provenance(lbctl, "acme/echo")
    assert shown["source"] == "marketplace"
    assert shown["origin"] == market.url
    assert shown["spec"] == spec
    assert shown["version"] == "1.1.0"
    assert shown["sha256"] == hashlib.sha256(market.listing("acme/echo").release("1.1.0")).hexdigest()
    assert shown["installed_at"]


def test_index_url_flag_is_recorded_as_origin(lbctl, market, monkeypatch):
    publish(market, "acme/echo", "1.0.0")
    monkeypatch.setenv("LBCTL_INDEX_URL", "http://market.invalid")

    ok(lbctl("install", "acme/echo", "--index-url", market.url + "/"))

    assert provenance(lbctl, "acme/echo")["origin"] == market.url


def test_user_agent_reaches_the_server(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0")

    ok(lbctl("install", "acme/echo"))
    ok(lbctl("market", "search", "echo"))

    agents = {h.get("user-agent") for h in market.headers}
    assert agents == {f"lbctl/{__version__}"}, agents


# outdated ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(lbctl, market, tmp_path):
    """acme/echo 1.0.0 (marketplace, 1.1.0 available), acme/local 1.0.0 (local; the market has 5.0.0),
    acme/web 1.0.0 (url; the market has 2.0.0), acme/fresh 1.0.0 (marketplace, newest)."""
    publish(market, "acme/echo", "1.0.0")
    publish(market, "acme/web", "1.0.0")
    publish(market, "acme/fresh", "1.0.0")
    local = tmp_path / "acme-local-1.0.0.lbpkg"
    local.write_bytes(make_lbpkg("acme", "local", "1.0.0"))
    url = f"{market.url}{DOWNLOAD_PREFIX}acme/web/1.0.0"
    ok(lbctl("install", "acme/echo", "acme/fresh", str(local), url))
    publish(market, "acme/echo", "1.1.0")
    publish(market, "acme/local", "5.0.0")
    publish(market, "acme/web", "2.0.0")
    assert {k: (v["version"], v["source"]) for k, v in installed(lbctl).items()} == {
        "acme/echo": ("1.0.0", "marketplace"), "acme/fresh": ("1.0.0", "marketplace"),
        "acme/local": ("1.0.0", "local"), "acme/web": ("1.0.0", "url")}
    return market


def test_outdated_lists_marketplace_installs_and_not_updatable_ones(lbctl, mixed):
    seen = len(mixed.requests)

    run = ok(lbctl("outdated", "--json"))

    assert run.json["data"]["outdated"] == [{"id": "acme/echo", "version": "1.0.0", "latest": "1.1.0"}]
    not_updatable = {n["id"]: n for n in run.json["data"]["not_updatable"]}
    assert set(not_updatable) == {"acme/local", "acme/web"}
    assert not_updatable["acme/local"]["source"] == "local" and not_updatable["acme/local"]["reason"]
    assert not_updatable["acme/web"]["source"] == "url" and not_updatable["acme/web"]["reason"]
    asked = [p for _, p in mixed.requests[seen:]]
    assert not [p for p in asked if "/acme/local" in p or "/acme/web" in p], "never asked about them"
    assert f"{API}/plugins/acme/echo/versions" in asked


def test_outdated_exit_code_flag(lbctl, mixed):
    assert ok(lbctl("outdated", "--exit-code"), 1).stdout
    table = ok(lbctl("outdated"))
    assert "acme/echo" in table.stdout and "1.1.0" in table.stdout
    assert "acme/local" in table.stdout  # under "not updatable"


def test_outdated_exit_code_is_0_when_everything_is_newest(lbctl, market, tmp_path):
    publish(market, "acme/echo", "1.0.0", "1.1.0b1")  # a newer pre-release is not an update
    local = tmp_path / "l.lbpkg"
    local.write_bytes(make_lbpkg("acme", "local", "1.0.0"))
    ok(lbctl("install", "acme/echo", str(local)))

    run = ok(lbctl("outdated", "--exit-code", "--json"))

    assert run.json["data"]["outdated"] == []
    assert [n["id"] for n in run.json["data"]["not_updatable"]] == ["acme/local"]


def test_list_outdated_shows_latest(lbctl, mixed):
    rows = installed(lbctl, "--outdated")
    assert {k: v["latest"] for k, v in rows.items()} == {"acme/echo": "1.1.0"}


# update -----------------------------------------------------------------------------------------------------


def test_update_all_with_mixed_sources(lbctl, mixed):
    doc = ok(lbctl("update", "--all", "--json")).json

    actions = actions_by_id(doc)
    assert (actions["acme/echo"]["action"], actions["acme/echo"]["from"], actions["acme/echo"]["to"],
            actions["acme/echo"]["status"]) == ("update", "1.0.0", "1.1.0", "done")
    for pid, source in (("acme/local", "local"), ("acme/web", "url")):
        assert actions[pid]["action"] == "skip" and actions[pid]["status"] == "skipped", actions[pid]
        assert actions[pid]["source"] == source
        assert actions[pid]["reason"], "each skip says why"
    assert actions["acme/fresh"]["status"] == "skipped" and "up to date" in actions["acme/fresh"]["reason"]
    assert doc["status"] == "success"
    rows = installed(lbctl)
    assert {k: (v["version"], v["source"]) for k, v in rows.items()} == {
        "acme/echo": ("1.1.0", "marketplace"), "acme/fresh": ("1.0.0", "marketplace"),
        "acme/local": ("1.0.0", "local"), "acme/web": ("1.0.0", "url")}
    assert provenance(lbctl, "acme/echo")["spec"] == "acme/echo", "the typed spec is kept through updates"
    assert not [p for p in downloads(mixed) if "/acme/local/" in p or "/acme/web/2.0.0" in p]


def test_update_all_table_output(lbctl, mixed):
    run = ok(lbctl("update", "--all"))

    text = run.stdout + run.stderr
    assert "acme/echo" in text and "1.1.0" in text
    assert "acme/local" in text and "acme/web" in text
    assert "updated 1 of 2" in text.lower()


def test_update_exclude(lbctl, mixed):
    doc = ok(lbctl("update", "--all", "--exclude", "acme/echo", "--json")).json

    assert "acme/echo" not in actions_by_id(doc)
    assert installed(lbctl)["acme/echo"]["version"] == "1.0.0"


@pytest.mark.parametrize("plugin", ["acme/local", "acme/web"])
def test_update_of_a_local_or_url_install_is_exit_6_with_a_hint(lbctl, mixed, home, plugin):
    before = tree_snapshot(home)

    run = lbctl("update", plugin, "--json")

    assert run.exit_code == 6, run.output
    [error] = run.json["errors"]
    assert error["plugin"] == plugin and error["hint"] and "install" in error["hint"]
    assert tree_snapshot(home) == before
    table = lbctl("update", plugin)
    assert table.exit_code == 6 and "hint:" in table.stderr


def test_update_of_something_not_installed_is_exit_5(lbctl, mixed):
    assert lbctl("update", "acme/ghost").exit_code == 5


def test_update_named_plugin(lbctl, mixed):
    doc = ok(lbctl("update", "acme/echo", "--json")).json

    assert [(a["id"], a["action"], a["to"]) for a in doc["data"]["actions"]] == [("acme/echo", "update", "1.1.0")]
    assert doc["data"]["summary"] == "updated 1 of 1"


def test_upgrade_alias(lbctl, mixed):
    ok(lbctl("upgrade", "acme/echo"))
    assert installed(lbctl)["acme/echo"]["version"] == "1.1.0"


def test_update_keeps_config(lbctl, market):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))
    ok(lbctl("config", "set", "acme/echo", "greeting=hello there", "count=7"))
    publish(market, "acme/echo", "1.1.0")

    ok(lbctl("update", "acme/echo"))

    assert installed(lbctl)["acme/echo"]["version"] == "1.1.0"
    assert ok(lbctl("config", "get", "acme/echo", "greeting", "--json")).json["data"]["value"] == "hello there"
    assert ok(lbctl("config", "get", "acme/echo", "count", "--json")).json["data"]["value"] == 7


def test_update_adds_defaults_for_new_keys_and_keeps_dropped_ones(lbctl, market):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))
    ok(lbctl("config", "set", "acme/echo", "greeting=kept", "count=3"))
    new_schema = [
        {"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
        {"name": "fresh", "type": "integer", "label": {"en_US": "Fresh"}, "default": 42, "required": False},
    ]
    publish(market, "acme/echo", "2.0.0", config=new_schema)

    doc = ok(lbctl("update", "--all", "--json")).json

    assert any("count" in w for w in doc["warnings"]), doc["warnings"]
    config = {row["name"]: row["value"] for row in
              ok(lbctl("config", "show", "acme/echo", "--json")).json["data"]["config"]}
    assert config["greeting"] == "kept" and config["fresh"] == 42
    assert ok(lbctl("config", "get", "acme/echo", "count", "--json")).json["data"]["value"] == 3


def test_update_partial_failure(lbctl, market, cache):
    publish(market, "acme/alpha", "1.0.0")
    publish(market, "acme/beta", "1.0.0")
    ok(lbctl("install", "acme/alpha", "acme/beta"))
    publish(market, "acme/alpha", "1.1.0")
    market.add_raw("acme", "beta", "1.1.0", b"\x00hostile bytes, not a package" * 10)

    run = lbctl("update", "--all", "--json")

    assert run.exit_code == 1, run.output
    doc = run.json
    assert doc["status"] == "partial" and doc["exit_code"] == 1
    assert doc["data"]["summary"] == "updated 1 of 2"
    actions = actions_by_id(doc)
    assert (actions["acme/alpha"]["action"], actions["acme/alpha"]["status"]) == ("update", "done")
    assert actions["acme/beta"]["status"] == "failed" and actions["acme/beta"]["reason"]
    assert [e["plugin"] for e in doc["errors"]] == ["acme/beta"]
    assert {k: v["version"] for k, v in installed(lbctl).items()} == {"acme/alpha": "1.1.0", "acme/beta": "1.0.0"}
    assert sorted(p.name for p in (cache / "index").iterdir()) == ["acme__alpha==1.0.0", "acme__alpha==1.1.0",
                                                                   "acme__beta==1.0.0"]
    assert not [f for f in files_under(cache) if f.endswith(".part")]


def test_update_partial_failure_table_output(lbctl, market):
    publish(market, "acme/alpha", "1.0.0")
    publish(market, "acme/beta", "1.0.0")
    ok(lbctl("install", "acme/alpha", "acme/beta"))
    publish(market, "acme/alpha", "1.1.0")
    market.add_raw("acme", "beta", "1.1.0", make_lbpkg("acme", "beta", "0.0.1"))  # wrong version inside

    run = lbctl("update", "--all")

    assert run.exit_code == 1, run.output
    text = run.stdout + run.stderr
    assert "updated 1 of 2" in text.lower()
    assert "error:" in run.stderr and "acme/beta" in run.stderr
    assert installed(lbctl)["acme/beta"]["version"] == "1.0.0"


def test_update_partial_failure_on_truncated_download(lbctl, market, cache):
    publish(market, "acme/alpha", "1.0.0")
    ok(lbctl("install", "acme/alpha"))
    publish(market, "acme/alpha", "1.1.0")
    market.truncate_downloads = True

    run = lbctl("update", "--all", "--json")

    assert run.exit_code in (1, 7), run.output  # a batch of one: partial (1) or the error's own code (7)
    assert run.json["errors"][0]["code"] == "network"
    assert installed(lbctl)["acme/alpha"]["version"] == "1.0.0"
    assert not [f for f in files_under(cache) if f.endswith(".part")]


def test_update_dry_run_changes_nothing(lbctl, mixed, home, cache):
    before = tree_snapshot(home)

    doc = ok(lbctl("update", "--all", "--dry-run", "--json")).json

    assert actions_by_id(doc)["acme/echo"]["status"] == "planned"
    assert actions_by_id(doc)["acme/echo"]["to"] == "1.1.0"
    assert doc["data"]["summary"].startswith("would update 1 of")
    assert tree_snapshot(home) == before
    assert installed(lbctl)["acme/echo"]["version"] == "1.0.0"
    table = ok(lbctl("update", "--all", "--dry-run"))
    assert "would update" in table.stdout
    assert tree_snapshot(home) == before


def test_update_when_already_newest_is_up_to_date(lbctl, market, home):
    publish(market, "acme/echo", "1.0.0", "1.1.0")
    ok(lbctl("install", "acme/echo"))
    before = tree_snapshot(home)

    run = ok(lbctl("update", "acme/echo"))
    every = ok(lbctl("update", "--all", "--json"))

    assert "up to date" in (run.stdout + run.stderr).lower()
    assert every.json["status"] == "success"
    assert [(a["action"], a["status"]) for a in every.json["data"]["actions"]] == [("skip", "skipped")]
    assert tree_snapshot(home) == before
    assert downloads(market) == [f"{DOWNLOAD_PREFIX}acme/echo/1.1.0"], "an up-to-date plugin is not downloaded"


def test_update_all_of_an_empty_home_is_nothing_to_do(lbctl, market):
    run = ok(lbctl("update", "--all", "--json"))
    assert run.json["data"]["actions"] == []


def test_update_needs_ids_or_all(lbctl, market):
    assert lbctl("update").exit_code == 2
    assert lbctl("update", "acme/echo", "--all").exit_code == 2


@pytest.mark.parametrize("to", ["1.0.0", "==1.0.0", "@1.0.0", "acme/echo==1.0.0", "<1.1"])
def test_update_to_downgrades(lbctl, market, to):
    publish(market, "acme/echo", "1.0.0", "1.1.0")
    ok(lbctl("install", "acme/echo"))

    doc = ok(lbctl("update", "acme/echo", "--to", to, "--json")).json

    [action] = doc["data"]["actions"]
    assert (action["action"], action["from"], action["to"], action["status"]) == ("downgrade", "1.1.0", "1.0.0", "done")
    assert installed(lbctl)["acme/echo"]["version"] == "1.0.0"
    assert provenance(lbctl, "acme/echo")["source"] == "marketplace"


def test_update_to_an_exact_newer_version(lbctl, market):
    publish(market, "acme/echo", "1.0.0", "1.1.0", "1.2.0")
    ok(lbctl("install", "acme/echo==1.0.0"))

    doc = ok(lbctl("update", "acme/echo", "--to", "==1.1.0", "--json")).json

    assert [(a["action"], a["to"]) for a in doc["data"]["actions"]] == [("update", "1.1.0")]
    assert downloads(market)[-1] == f"{DOWNLOAD_PREFIX}acme/echo/1.1.0"


def test_update_to_a_pre_release(lbctl, market):
    publish(market, "acme/echo", "1.0.0", "2.0.0b1")
    ok(lbctl("install", "acme/echo"))

    assert ok(lbctl("update", "acme/echo", "--json")).json["data"]["actions"][0]["action"] == "skip"
    doc = ok(lbctl("update", "acme/echo", "--pre", "--json")).json
    assert doc["data"]["actions"][0]["to"] == "2.0.0b1"


def test_update_to_a_missing_version_fails_and_changes_nothing(lbctl, market, home):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))
    before = tree_snapshot(home)

    run = lbctl("update", "acme/echo", "--to", "3.0.0", "--json")

    assert run.exit_code != 0, run.output
    assert run.json["status"] in ("error", "partial")
    assert tree_snapshot(home) == before


@pytest.mark.parametrize("args", [("--all", "--to", "1.0.0"), ("acme/echo", "--to", "other/plugin==1.0.0"),
                                  ("acme/echo", "--to", "not a spec!!")])
def test_update_to_bad_usage_is_exit_2(lbctl, market, args):
    publish(market, "acme/echo", "1.0.0")
    ok(lbctl("install", "acme/echo"))

    assert lbctl("update", *args).exit_code == 2


def test_update_all_fetches_concurrently(lbctl, market):
    plugins = [f"acme/p{i}" for i in range(10)]
    for pid in plugins:
        publish(market, pid, "1.0.0", config=[])
    ok(lbctl("install", *plugins))
    for pid in plugins:
        publish(market, pid, "1.1.0", config=[])
    market.latency = 0.2
    seen = len(market.requests)

    doc = ok(lbctl("update", "--all", "--json")).json

    per_plugin = (len(market.requests) - seen) / len(plugins)
    assert doc["data"]["summary"] == "updated 10 of 10"
    assert per_plugin >= 2  # versions + download at least
    assert market.max_in_flight >= 5, f"at most {market.max_in_flight} requests were in flight at once"


def test_install_of_many_specs_fetches_concurrently(lbctl, market):
    plugins = [f"acme/q{i}" for i in range(8)]
    for pid in plugins:
        publish(market, pid, "1.0.0", config=[])
    market.latency = 0.2

    ok(lbctl("install", *plugins))

    assert market.max_in_flight >= 4, f"at most {market.max_in_flight} requests were in flight at once"


def test_transient_server_errors_are_retried(lbctl, market):
    publish(market, "acme/echo", "1.0.0")
    market.fail_requests = 1

    ok(lbctl("install", "acme/echo"))

    assert installed(lbctl)["acme/echo"]["version"] == "1.0.0"


# market search / market show --------------------------------------------------------------------------------


@pytest.fixture
def catalogue(market):
    market.add(make_lbpkg("acme", "echo", "1.0.0", description="Echoes what you say"), install_count=50,
               tags=["utility"])
    market.add(make_lbpkg("acme", "search", "0.3.0", description="Web search", commands=["find"]),
               install_count=500, tags=["search", "web"])
    market.add(make_lbpkg("zed", "weather", "2.1.0", description="Weather reports"), install_count=5,
               tags=["web"])
    market.add(make_lbpkg("zed", "echo-pro", "0.1.0", description="A louder echo", tools=(), commands=["shout"]),
               install_count=10, tags=None)
    return market


def search(lbctl, *args: str) -> dict:
    return ok(lbctl("market", "search", *args, "--json")).json["data"]


def test_market_search_query(lbctl, catalogue):
    data = search(lbctl, "echo")

    assert [p["id"] for p in data["plugins"]] == ["acme/echo", "zed/echo-pro"]
    assert data["total"] == 2 and data["page"] == 1
    first = data["plugins"][0]
    assert (first["latest_version"], first["install_count"], first["description"], first["installed"]) == (
        "1.0.0", 50, "Echoes what you say", None)
    body = catalogue.bodies[-1]
    assert body["query"] == "echo" and body["type_filter"] == "plugin"


def test_market_search_browse_everything(lbctl, catalogue):
    data = search(lbctl)
    assert [p["id"] for p in data["plugins"]] == ["acme/search", "acme/echo", "zed/echo-pro", "zed/weather"]
    assert data["total"] == 4


def test_market_search_component_filter(lbctl, catalogue):
    assert [p["id"] for p in search(lbctl, "--component", "Command")["plugins"]] == ["acme/search", "zed/echo-pro"]
    assert catalogue.bodies[-1]["component_filter"] == "Command"
    assert [p["id"] for p in search(lbctl, "echo", "--component", "Tool")["plugins"]] == ["acme/echo"]


def test_market_search_tag_filter(lbctl, catalogue):
    assert [p["id"] for p in search(lbctl, "--tag", "web")["plugins"]] == ["acme/search", "zed/weather"]
    assert catalogue.bodies[-1]["tags_filter"] == ["web"]
    assert [p["id"] for p in search(lbctl, "--tag", "utility", "--tag", "search")["plugins"]] == [
        "acme/search", "acme/echo"]


@pytest.mark.parametrize(
    ("sort", "sort_by", "order"),
    [
        ("installs", "install_count", ["acme/search", "acme/echo", "zed/echo-pro", "zed/weather"]),
        ("newest", "created_at", ["zed/echo-pro", "zed/weather", "acme/search", "acme/echo"]),
        ("updated", "updated_at", ["acme/echo", "zed/echo-pro", "zed/weather", "acme/search"]),
    ],
)
def test_market_search_sort(lbctl, catalogue, sort, sort_by, order):
    catalogue.add(make_lbpkg("acme", "echo", "1.0.1"), install_count=50, tags=["utility"])  # most recently updated

    data = search(lbctl, "--sort", sort)

    assert [p["id"] for p in data["plugins"]] == order
    assert catalogue.bodies[-1]["sort_by"] == sort_by


def test_market_search_bad_sort_is_exit_2(lbctl, catalogue):
    assert lbctl("market", "search", "--sort", "stars").exit_code == 2


def test_market_search_pages(lbctl, catalogue):
    page1 = search(lbctl, "--limit", "3")
    page2 = search(lbctl, "--page", "2", "--limit", "3")

    assert [p["id"] for p in page1["plugins"]] == ["acme/search", "acme/echo", "zed/echo-pro"]
    assert [p["id"] for p in page2["plugins"]] == ["zed/weather"]
    assert (page2["total"], page2["page"]) == (4, 2)
    assert (catalogue.bodies[-1]["page"], catalogue.bodies[-1]["page_size"]) == (2, 3)


@pytest.mark.parametrize("args", [("--page", "0"), ("--limit", "0"), ("--limit", "101")])
def test_market_search_bad_paging_is_exit_2(lbctl, catalogue, args):
    assert lbctl("market", "search", *args).exit_code == 2


def test_market_search_installed_marker(lbctl, catalogue):
    ok(lbctl("install", "acme/echo"))

    data = search(lbctl, "echo")
    table = ok(lbctl("market", "search", "echo"))

    assert {p["id"]: p["installed"] for p in data["plugins"]} == {"acme/echo": "1.0.0", "zed/echo-pro": None}
    [echo_line] = [line for line in table.stdout.splitlines() if "acme/echo" in line]
    assert "installed" in echo_line
    [pro_line] = [line for line in table.stdout.splitlines() if "zed/echo-pro" in line]
    assert "installed" not in pro_line


def test_market_search_table(lbctl, catalogue):
    run = ok(lbctl("market", "search", "web"))

    header = run.stdout.splitlines()
    assert any(all(col in line for col in ("ID", "LATEST", "INSTALLS", "DESCRIPTION")) for line in header)
    assert "acme/search" in run.stdout and "0.3.0" in run.stdout and "500" in run.stdout
    assert "Web search" in run.stdout


def test_market_search_empty_result(lbctl, catalogue):
    run = ok(lbctl("market", "search", "no-such-thing"))
    assert run.stderr.strip(), "a message on stderr"
    assert "acme/" not in run.stdout
    doc = ok(lbctl("market", "search", "no-such-thing", "--json")).json
    assert doc["data"]["plugins"] == [] and doc["data"]["total"] == 0 and doc["status"] == "success"


def test_market_search_falls_back_on_older_services(lbctl, catalogue):
    catalogue.unified_search = False

    data = search(lbctl, "weather")

    assert [p["id"] for p in data["plugins"]] == ["zed/weather"]
    assert catalogue.paths("POST")[-2:] == [f"{API}/extensions/search", f"{API}/plugins/search"]


def test_market_show(lbctl, catalogue):
    doc = ok(lbctl("market", "show", "acme/search", "--json")).json

    plugin = doc["data"]["plugin"]
    assert (plugin["plugin_id"], plugin["latest_version"], plugin["install_count"]) == ("acme/search", "0.3.0", 500)
    assert doc["data"]["versions"] is None
    assert not [p for p in catalogue.paths() if p.endswith("/versions")]
    table = ok(lbctl("market", "show", "acme/search"))
    assert "acme/search" in table.stdout and "0.3.0" in table.stdout


def test_market_show_versions_newest_first(lbctl, market):
    publish(market, "acme/echo", "0.9.0", "1.0.0", "1.1.0rc1", "1.1.0")

    doc = ok(lbctl("market", "show", "acme/echo", "--versions", "--json")).json
    table = ok(lbctl("market", "show", "acme/echo", "--versions"))

    assert doc["data"]["versions"] == ["1.1.0", "1.1.0rc1", "1.0.0", "0.9.0"]
    assert doc["data"]["plugin"]["latest_version"] == "1.1.0"
    assert "1.1.0, 1.1.0rc1, 1.0.0, 0.9.0" in table.stdout


@pytest.mark.parametrize("plugin", ["acme/nope", "nobody/echo"])
def test_market_show_unknown_is_exit_5(lbctl, catalogue, plugin):
    run = lbctl("market", "show", plugin, "--json")
    assert run.exit_code == 5, run.output
    assert run.json["errors"][0]["code"] == "not_found"


def test_market_show_invalid_id_is_exit_2(lbctl, catalogue):
    assert lbctl("market", "show", "not-an-id").exit_code == 2


def test_market_commands_need_the_network(lbctl, catalogue):
    run = lbctl("--offline", "market", "search", "echo", "--json")
    assert run.exit_code == 7, run.output
    assert catalogue.requests == []


# a transport-level fake for an edge the HTTP fake cannot produce -------------------------------------------


def test_download_larger_than_announced_is_refused_without_leftovers(lbctl, monkeypatch, home, cache):
    """A download whose body is longer than its Content-Length is not understood: exit 8, nothing kept."""
    base = "https://market.example.test"
    monkeypatch.setenv("LBCTL_INDEX_URL", base)
    package = make_lbpkg("acme", "echo", "1.0.0")
    with respx.mock:
        respx.get(f"{base}{API}/plugins/acme/echo/versions").respond(
            json={"code": 0, "msg": "ok", "data": {"versions": [{"version": "1.0.0"}]}})
        respx.get(f"{base}{DOWNLOAD_PREFIX}acme/echo/1.0.0").mock(
            return_value=httpx.Response(200, headers={"Content-Length": str(len(package) - 10)},
                                        stream=httpx.ByteStream(package)))
        run = lbctl("install", "acme/echo", "--json")
    assert run.exit_code in (7, 8), run.output
    assert files_under(home) == []
    assert not [f for f in files_under(cache) if f.endswith(".lbpkg") or f.endswith(".part")]


@pytest.mark.parametrize("args", [("market", "search", "x"), ("market", "show", "acme/echo"),
                                  ("install", "acme/echo"), ("download", "acme/echo", "-d", "dl")])
def test_a_host_that_does_not_exist_fails_at_once_on_every_command(lbctl, monkeypatch, args):
    import socket
    import time

    lookups = []

    def no_such_host(host, *rest, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    started = time.monotonic()
    result = lbctl("--index-url", "http://market.example.invalid", *args, "--json")
    assert result.exit_code == 7 and result.json["errors"][0]["code"] == "network"
    assert time.monotonic() - started < 1.5 and lookups == ["market.example.invalid"]
