"""LangBot answers a real instance cannot be made to give on demand (an HTML error page, 429, a huge or
malformed answer, a timeout), faked at the transport with respx; each must get the exit code of spec §8."""

from __future__ import annotations

import httpx
import pytest
import respx

URL = "https://langbot.test"
PLUGINS = f"{URL}/api/v1/plugins"


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")


def run(lbctl, *args):
    result = lbctl("--target", URL, *args, "--json")
    return result.exit_code, result.json


@pytest.mark.parametrize("answer, code, error", [
    (httpx.Response(200, html="<html><body>Welcome to nginx</body></html>"), 8, "protocol"),
    (httpx.Response(502, html="<html>Bad gateway</html>"), 8, "protocol"),
    (httpx.Response(404, html="<!doctype html><title>404 Not Found</title>"), 6, "no_api"),
    (httpx.Response(429, json={"code": "task_capacity_exceeded", "msg": "too many tasks"}), 6, "busy"),
    (httpx.Response(500, json={"code": "internal_error", "msg": "Internal server error"}), 6, "precondition"),
    (httpx.Response(401, json={"code": -1, "msg": "No valid authentication provided"}), 3, "credentials"),
    (httpx.Response(403, json={"code": "permission_denied", "msg": "Missing Workspace permission"}), 3, "credentials"),
    (httpx.Response(200, json={"code": 0, "msg": "ok", "data": {"plugins": "many"}}), 8, "protocol"),
    (httpx.Response(200, json={"code": 0, "msg": "ok", "data": {"plugins": [{"manifest": {}}]}}), 8, "protocol"),
    (httpx.Response(200, json=[1, 2, 3]), 8, "protocol"),
    (httpx.Response(200, content=b"{" + b" " * (5 * 1024 * 1024) + b"}"), 8, "protocol"),
])
def test_each_langbot_answer_gets_its_exit_code(lbctl, monkeypatch, answer, code, error):
    from lbctl import langbot

    monkeypatch.setattr(langbot, "BUSY_WINDOW", 0.5, raising=False)
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(return_value=answer)
        exit_code, doc = run(lbctl, "--timeout", "2", "list")
    assert (exit_code, doc["exit_code"], doc["errors"][0]["code"]) == (code, code, error), doc
    # A 500 (LangBot failing while busy) and a 429 are asked again, within BUSY_WINDOW and --timeout.
    assert route.call_count >= 3 if answer.status_code in (429, 500) else True


@pytest.mark.parametrize("busy", [httpx.Response(500, json={"code": "internal_error", "msg": "Internal server error"}),
                                  httpx.Response(429, json={"code": "task_capacity_exceeded", "msg": "too many"})])
def test_a_read_that_gets_a_500_or_429_while_langbot_is_busy_is_asked_again(lbctl, busy):
    answers = iter([busy] * 3)
    listed = {"code": 0, "msg": "ok", "data": {"plugins": [_plugin("initialized")]}}
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).mock(side_effect=lambda request: next(answers, httpx.Response(200, json=listed)))
        exit_code, doc = run(lbctl, "list")
    assert exit_code == 0 and [p["id"] for p in doc["data"]["plugins"]] == ["acme/echo"], doc
    assert route.call_count == 4


def test_unreachable_and_timeouts_are_exit_7(lbctl):
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        respx.get(PLUGINS).mock(side_effect=httpx.ConnectError("refused"))
        assert run(lbctl, "list")[0] == 7
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        respx.get(PLUGINS).mock(side_effect=httpx.ReadTimeout("slow"))
        assert run(lbctl, "list")[0] == 7


def test_a_plugin_that_is_not_installed_is_exit_5_with_a_suggestion(lbctl):
    plugin = {"manifest": {"manifest": {"metadata": {"author": "acme", "name": "echo", "version": "1.0.0"}}},
              "install_source": "marketplace", "status": "initialized"}
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        respx.get(PLUGINS).respond(json={"code": 0, "msg": "ok", "data": {"plugins": [plugin]}})
        exit_code, doc = run(lbctl, "show", "acme/ecko")
    assert exit_code == 5 and doc["errors"][0]["hint"] == "Did you mean acme/echo?"


def test_the_api_key_is_sent_in_a_header_and_never_shown(lbctl, monkeypatch):
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_very_secret_value")
    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        route = respx.get(PLUGINS).respond(401, json={"code": "invalid_authentication", "msg": "Invalid"})
        result = lbctl("--target", URL, "list", "-v")
    assert route.calls.last.request.headers["X-API-Key"] == "lbk_very_secret_value"
    assert result.exit_code == 3 and "lbk_very_secret_value" not in result.stdout + result.stderr


def _plugin(status: str) -> dict:
    return {"manifest": {"manifest": {"metadata": {"author": "acme", "name": "echo", "version": "1.0.0"},
                                      "spec": {"config": [{"name": "greeting", "type": "string", "default": "hi"}]}}},
            "install_source": "marketplace", "status": status}


def _config_set(lbctl, statuses: list[str]):
    """`config set` on a LangBot that answers the plugins route with `statuses` after the PUT, then the last."""
    after_put = iter(statuses)
    put = {"done": False}

    def plugins(request):
        status = next(after_put, statuses[-1]) if put["done"] else "initialized"
        return httpx.Response(200, json={"code": 0, "msg": "ok", "data": {"plugins": [_plugin(status)]}})

    def stored(request):
        put["done"] = True
        return httpx.Response(200, json={"code": 0, "msg": "ok", "data": {}})

    with respx.mock:
        respx.get(f"{URL}/api/v1/system/info").respond(json={"code": 0, "msg": "ok", "data": {}})
        listed = respx.get(PLUGINS).mock(side_effect=plugins)
        respx.get(f"{PLUGINS}/acme/echo/config").respond(
            json={"code": 0, "msg": "ok", "data": {"config": {"greeting": "hi"}}})
        respx.put(f"{PLUGINS}/acme/echo/config").mock(side_effect=stored)
        exit_code, doc = run(lbctl, "config", "set", "acme/echo", "greeting=hello")
    return exit_code, doc, listed.call_count


def test_a_config_change_waits_until_the_plugin_is_initialized_again(lbctl):
    """LangBot restarts a plugin after a config change; it is `mounted` until its initialize() returns."""
    exit_code, doc, polls = _config_set(lbctl, ["gone", "mounted", "mounted", "initialized"])
    assert exit_code == 0, doc
    assert polls >= 5  # the read before the change, then until `initialized`


def test_a_plugin_that_does_not_initialize_after_a_config_change_is_exit_9(lbctl, monkeypatch):
    from lbctl.targets import langbot

    monkeypatch.setattr(langbot, "INIT_WINDOW", 0.6)
    exit_code, doc, _ = _config_set(lbctl, ["mounted"])
    assert (exit_code, doc["errors"][0]["code"]) == (9, "plugin_failed"), doc
    assert "did not initialize again after its config changed (status: mounted)" in doc["errors"][0]["message"]
