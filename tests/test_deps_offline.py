"""Plugins with real third-party dependencies (tests/plugins/deps-*), provisioned from a wheelhouse: the
wheels come from PyPI once (`deps download`), then the real runtime installs them from `runtime serve
--wheelhouse`'s local index only, with every other host unreachable. Needs PyPI for the download step."""

from __future__ import annotations

import os
import re

import pytest
from deps_support import RecordingProxy, build_plugin
from pkgfactory import make_lbpkg
from test_runtime_support import start_host  # noqa: F401

from conftest import tree_snapshot
from lbctl import lbpkg
from lbctl.context import Context
from lbctl.errors import NotFoundError
from lbctl.ops.deps import download_wheels
from lbctl.settings import resolve

pytestmark = pytest.mark.runtime
PURE, COMPILED = "lbctl-tests/deps-pure", "lbctl-tests/deps-compiled"
FETCHED = re.compile(r'"GET /packages/(\S+) HTTP/1\.1" 200')


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("packages")
    return build_plugin("deps-pure", out), build_plugin("deps-compiled", out)


def test_plugins_start_from_the_wheelhouse_alone_and_a_restart_reinstalls_nothing(lbctl, tmp_path, packages,
                                                                                start_host):  # noqa: F811
    assert lbctl("install", *packages).exit_code == 0
    saved = lbctl("deps", "download", "-d", tmp_path / "wh", "--json")
    assert saved.exit_code == 0, saved.output
    wheels = {w["name"]: w for w in saved.json["data"]["wheels"]}
    assert set(wheels) == {"python-slugify", "text-unidecode", "humanize", "mmh3"}  # never langbot-plugin
    assert wheels["text-unidecode"]["plugins"] == [PURE] and wheels["mmh3"]["plugins"] == [COMPILED]
    assert not wheels["mmh3"]["file"].endswith("-none-any.whl")  # a compiled wheel
    proxy = RecordingProxy()
    host = start_host(env=proxy.env(), args=("--wheelhouse", str(tmp_path / "wh")), cli=True)

    for plugin in (PURE, COMPILED):
        host.wait_state("running", plugin=plugin, timeout=180)
    pure = host.client.call_tool(PURE, "slug", {"text": "Héllo Wörld"})
    murmur = host.client.call_tool(COMPILED, "murmur", {"text": "hello"})

    assert (pure["slug"], pure["size"], murmur["hash"]) == ("hello-world", "13 Bytes", 613153351)
    environments = str(tmp_path / "home" / "runtime" / "data" / "plugin-runtime" / "environments")
    assert all(path.startswith(environments) for path in pure["from"] + murmur["from"]), (pure, murmur)
    assert murmur["from"][0].endswith(".so")
    assert sorted(FETCHED.findall(host.log.read_text())) == sorted(w["file"] for w in wheels.values())
    assert proxy.seen == []

    assert host.stop() == 0
    before = len(host.log.read_text())  # the next host appends to the same log
    again = start_host(env=proxy.env(), args=("--wheelhouse", str(tmp_path / "wh")), cli=True)
    for plugin in (PURE, COMPILED):
        again.wait_state("running", plugin=plugin, timeout=60)
    assert again.client.call_tool(COMPILED, "murmur", {"text": "hello"})["hash"] == 613153351
    assert FETCHED.findall(again.log.read_text()[before:]) == []
    assert proxy.seen == []
    proxy.close()


def test_download_wheels_for_another_python_takes_published_wheels(tmp_path, packages):
    ctx = Context(resolve({"home": tmp_path / "home"}, os.environ))

    plugins = [(info.id, info.requirements) for info in map(lbpkg.read_file, packages)]
    wheels = download_wheels(ctx, plugins, tmp_path / "dist", python_version="3.12", platform="manylinux2014_x86_64")

    mmh3 = next(w for w in wheels if w["name"] == "mmh3")
    assert "-cp312-" in mmh3["file"] and "manylinux" in mmh3["file"]
    assert sorted(p.name for p in (tmp_path / "dist" / "wheels").iterdir()) == sorted(w["file"] for w in wheels)


def test_a_requirement_that_pip_cannot_find_fails_naming_the_plugin_and_writes_nothing(lbctl, tmp_path):
    path = tmp_path / "lbctl-tests-ghost-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg("lbctl-tests", "ghost", "0.1.0", config=[],
                                extra_files={"requirements.txt": "lbctl-no-such-distribution-3f9a\n"}))
    assert lbctl("install", path).exit_code == 0
    before = tree_snapshot(tmp_path / "wh")

    result = lbctl("deps", "download", "-d", tmp_path / "wh", "--json")

    assert result.exit_code == NotFoundError.exit_code, result.output
    (error,) = result.json["errors"]
    assert error["plugin"] == "lbctl-tests/ghost"
    assert error["message"].startswith("lbctl-tests/ghost: ") and "lbctl-no-such-distribution-3f9a" in error["message"]
    assert tree_snapshot(tmp_path / "wh") == before
    assert not any(p.is_file() for p in (tmp_path / "wh").rglob("*"))
