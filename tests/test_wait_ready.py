"""`--wait-ready` (spec §8): ready means the plugins route answers 200 *and* LangBot has its installed plugins back.

A LangBot whose runtime has just (re)connected answers `GET /api/v1/plugins` 200 with `[]` while it replays its
installations, then lists one plugin after another as their workers register; its /healthz says which phase it
is in (`resources.runtimes.plugin_runtime_connected`, `plugin_installations`). Faked at the transport here, phase
by phase; tests/test_langbot_compose.py restarts the real LangBot's runtime and tests/test_containers.py a whole
compose deployment."""

from __future__ import annotations

import httpx
import pytest
import respx

URL = "https://langbot.test"
PLUGINS = f"{URL}/api/v1/plugins"
HEALTHZ = f"{URL}/healthz"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")


def plugin(name: str) -> dict:
    return {"manifest": {"manifest": {"metadata": {"author": "acme", "name": name, "version": "1.0.0"}}},
            "install_source": "marketplace", "status": "initialized", "install_info": {}}


def listed(*names: str) -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "msg": "ok", "data": {"plugins": [plugin(n) for n in names]}})


def health(connected: bool, installations: int) -> httpx.Response:
    runtimes = {"plugins": 0, "plugin_installations": installations, "plugin_runtime_connected": connected}
    return httpx.Response(200, json={"code": 0, "msg": "ok", "resources": {"runtimes": runtimes}})


def phases(*steps: tuple[httpx.Response, httpx.Response]) -> tuple[list, list]:
    """The plugins-route and /healthz answers of successive polls; the last pair repeats."""
    plugins, healths = [p for p, _ in steps], [h for _, h in steps]
    return plugins + [plugins[-1]] * 200, healths + [healths[-1]] * 200


def list_ids(lbctl, *args: str) -> tuple[int, dict]:
    run = lbctl("--target", URL, *args, "list", "--json")
    return run.exit_code, run.json


NOT_CONNECTED = httpx.Response(500, json={"code": "internal_error", "msg": "Plugin runtime is not connected"})


def test_waits_through_a_runtime_restart_until_every_plugin_is_back(lbctl):
    plugins, healths = phases(
        (NOT_CONNECTED, health(False, 2)),   # the runtime is gone: the plugins route fails
        (listed(), health(False, 2)),        # reconnecting: LangBot lists [] while it replays its installations
        (listed(), health(True, 2)),         # connected; the plugins' workers are starting
        (listed("one"), health(True, 2)),
        (listed("one", "two"), health(True, 2)),
    )
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(side_effect=plugins)
        respx.get(HEALTHZ).mock(side_effect=healths)
        code, doc = list_ids(lbctl, "--wait-ready", "60")
    assert code == 0, doc
    assert [p["id"] for p in doc["data"]["plugins"]] == ["acme/one", "acme/two"]
    assert route.call_count == 6  # five polls, then the list itself


def test_an_instance_with_no_plugins_is_ready_once_connected(lbctl):
    plugins, healths = phases((listed(), health(False, 0)), (listed(), health(True, 0)))
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(side_effect=plugins)
        respx.get(HEALTHZ).mock(side_effect=healths)
        code, doc = list_ids(lbctl, "--wait-ready", "60")
    assert (code, doc["data"]["plugins"], route.call_count) == (0, [], 3)


def test_a_plugin_that_never_comes_back_stops_the_wait_after_langbots_init_window(lbctl, monkeypatch):
    from lbctl.targets import langbot

    monkeypatch.setattr(langbot, "INIT_WINDOW", 1.2)
    plugins, healths = phases((listed("one"), health(True, 2)))
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(side_effect=plugins)
        respx.get(HEALTHZ).mock(side_effect=healths)
        code, doc = list_ids(lbctl, "--wait-ready", "60")
    assert code == 0, doc
    assert [p["id"] for p in doc["data"]["plugins"]] == ["acme/one"]
    assert 3 <= route.call_count <= 6  # polled for the window (0.5 s apart), not for the whole --wait-ready


def test_a_runtime_that_never_connects_is_exit_7_saying_so(lbctl):
    plugins, healths = phases((listed(), health(False, 1)))
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        respx.get(PLUGINS).mock(side_effect=plugins)
        respx.get(HEALTHZ).mock(side_effect=healths)
        code, doc = list_ids(lbctl, "--wait-ready", "1")
    assert (code, doc["errors"][0]["code"]) == (7, "network"), doc
    assert doc["errors"][0]["message"].endswith("was not ready after 1 s (its plugin runtime is still connecting)")


@pytest.mark.parametrize("answer", [httpx.Response(404, html="<title>404</title>"),
                                    httpx.Response(200, json={"code": 0, "msg": "ok"})])
def test_a_langbot_whose_healthz_says_nothing_is_ready_when_its_plugins_route_answers(lbctl, answer):
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(side_effect=[NOT_CONNECTED, listed(), listed()])
        respx.get(HEALTHZ).mock(return_value=answer)
        code, doc = list_ids(lbctl, "--wait-ready", "60")
    assert (code, doc["data"]["plugins"], route.call_count) == (0, [], 3)
