"""The farm (bench/farm.py) against the real LangBot 4.11.2 it imitates: the same lbctl commands on both give
the same outcomes; and a fleet's summary output with the real LangBot in it."""

from __future__ import annotations

import re
import sys
import uuid

import pytest

from conftest import REPO
from langbot_harness import free_port
from pkgfactory import make_lbpkg

sys.path.insert(0, str(REPO / "bench"))

from farm import Farm, FarmOptions  # noqa: E402

pytestmark = pytest.mark.langbot

CONFIG = [
    {"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
    {"name": "api_key", "type": "string", "label": {"en_US": "Key"}, "default": "", "required": False},
]
VOLATILE = {"installed_at"}  # when lbctl recorded each install: differs between any two runs


@pytest.fixture
def pair(langbot_server, monkeypatch):
    """The session's real LangBot and a one-instance farm on the same marketplace, with the same key."""
    server, market = langbot_server
    options = FarmOptions(api_key=server.api_key, latency=0.005, prepare_seconds=0.05, install_seconds=0.3)
    monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
    with Farm(1, market=market, options=options) as farm:
        yield server, farm, market
    server.remove_all_plugins()


def normal(value, urls: list[str]):
    """A JSON answer with the target URLs and the volatile fields taken out."""
    if isinstance(value, dict):
        return {k: normal(v, urls) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normal(v, urls) for v in value]
    if isinstance(value, str):
        for url in urls:
            value = value.replace(url, "URL")
        return re.sub(r"127\.0\.0\.1:\d+", "HOST", value)
    return value


def test_the_same_commands_give_the_same_outcomes_on_the_farm_and_on_the_real_langbot(pair, lbctl, tmp_path):
    server, farm, market = pair
    author = "f" + uuid.uuid4().hex[:8]
    local = tmp_path / f"{author}-alpha-1.0.0.lbpkg"
    local.write_bytes(make_lbpkg(author, "alpha", "1.0.0", config=CONFIG, commands=("hello",)))
    market.add(make_lbpkg(author, "beta", "1.0.0", config=CONFIG))
    alpha, beta = f"{author}/alpha", f"{author}/beta"
    steps = [
        ("install", str(local), f"{beta}==1.0.0"),
        ("list",),
        ("show", alpha),
        ("config", "set", alpha, "greeting=hello", "api_key=s3cret"),
        ("config", "show", alpha),
        ("config", "set", alpha, "api_key=s3cret"),  # the same secret again: nothing to send
        ("install", f"{beta}==7.0.0"),  # no such version on the marketplace
        ("uninstall", alpha),
        ("install", str(local)),  # the config kept across the uninstall comes back
        ("config", "get", alpha, "greeting"),
        ("freeze", "--with-config"),
    ]
    urls = [server.url, farm.urls[0]]
    for step in steps:
        if step == ("install", f"{beta}==7.0.0"):
            market.add(make_lbpkg(author, "beta", "1.1.0", config=CONFIG))
        real, fake = (lbctl("--target", url, *step, "--json") for url in urls)
        assert (fake.exit_code, normal(fake.json, urls)) == (real.exit_code, normal(real.json, urls)), step
    update = [lbctl("--target", url, "update", "--all", "--json") for url in urls]
    assert normal(update[1].json, urls) == normal(update[0].json, urls)
    assert [a["to"] for a in update[0].json["data"]["actions"] if a["id"] == beta] == ["1.1.0"]
    assert farm.versions(0) == {alpha: "1.0.0", beta: "1.1.0"}


def test_a_fleet_of_the_real_langbot_the_farm_and_a_down_url_reads_as_one_row_each(pair, lbctl, tmp_path):
    server, farm, market = pair
    author = "f" + uuid.uuid4().hex[:8]
    market.add(make_lbpkg(author, "gamma", "1.0.0", config=CONFIG))
    file = tmp_path / "plugins.toml"
    file.write_text(f'[[plugin]]\nid = "{author}/gamma"\nversion = "==1.0.0"\n[plugin.config]\ngreeting = "yo"\n')
    down = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "config.toml").write_text(f'[targets.real]\nurl = "{server.url}"\n[targets.farm]\n'
                                          f'url = "{farm.urls[0]}"\n[targets.gone]\nurl = "{down}"\n')

    run = lbctl("--target", "real,farm,gone", "sync", str(file))

    assert run.exit_code == 7, run.output
    rows = [re.split(r"\s{2,}", line.strip()) for line in run.stdout.splitlines()]
    assert rows[0] == ["TARGET", "STATUS", "CHANGED", "ERROR"]
    assert rows[1] == ["real", "ok", "installed 1, configured 1"]
    assert rows[2] == ["farm", "ok", "installed 1, configured 1"]
    assert rows[3][:3] == ["gone", "error (7)", "-"] and "is unreachable" in rows[3][3]
    assert rows[4:] == [["3 targets: 2 ok, 1 error; exit code 7"]]
    again = lbctl("--target", "real,farm", "-v", "sync", str(file))
    assert "== real ==" in again.stdout and "== farm ==" in again.stdout, again.output
    tail = [re.split(r"\s{2,}", line.strip()) for line in again.stdout.splitlines()[-3:]]
    assert tail == [["real", "ok", "no change"], ["farm", "ok", "no change"], ["2 targets: 2 ok"]], again.output
    assert server.api(f"/plugins/{author}/gamma/config")["data"]["config"] == {"greeting": "yo"}
    assert farm.config(0, f"{author}/gamma") == {"greeting": "yo"}
