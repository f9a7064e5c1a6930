"""`lbctl sync --check` (spec §4): drift detection for schedulers (a CronJob, a compose healthcheck, CI). It changes
nothing, prints the plan, exits 0 when the target matches the file and 1 when it has drifted; its JSON is the
planned actions plus `"drift"`. Locally, on the real LangBot, and on several targets at once."""

from __future__ import annotations

import pytest

from conftest import tree_snapshot
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg
from test_langbot_target import lb, plugins_file  # noqa: F401  (the `lb` fixture)


@pytest.fixture
def market(monkeypatch):
    with FakeMarket() as fake:
        monkeypatch.setenv("LBCTL_INDEX_URL", fake.url)
        fake.add(make_lbpkg("acme", "echo", "1.0.0"))
        fake.add(make_lbpkg("acme", "echo", "1.1.0"))
        yield fake


def check(lbctl, *args, code: int):
    run = lbctl("sync", "--check", *args)
    assert run.exit_code == code, run.output
    return run


def test_check_reports_drift_with_the_plan_and_changes_nothing_then_passes_once_synced(lbctl, market, tmp_path,
                                                                                         home):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.0.0"\n[plugin.config]\ngreeting = "hey"\n')
    before = tree_snapshot(home)

    drifted = check(lbctl, file, "--json", code=1)
    table = check(lbctl, file, code=1)

    doc = drifted.json
    assert doc["status"] != "success" and doc["data"]["drift"] is True
    assert [(a["id"], a["action"], a["status"]) for a in doc["data"]["actions"]] == [
        ("acme/echo", "install", "planned"), ("acme/echo", "config", "planned")]
    assert doc["errors"][0]["code"] == "drift" and "2 planned changes (acme/echo)" in doc["errors"][0]["message"]
    assert table.stdout.splitlines() == ["would install acme/echo 1.0.0 (marketplace)",
                                         "would config acme/echo 1.0.0 (marketplace): set greeting"]
    assert "error: local differs from" in table.stderr
    assert tree_snapshot(home) == before

    assert lbctl("sync", file).exit_code == 0
    requests = len(market.requests)
    synced = check(lbctl, file, "--json", code=0)
    assert synced.json["data"] == {"actions": [], "drift": False, "target": "local"} and synced.json["errors"] == []
    assert "Nothing to do." in check(lbctl, file, code=0).stderr
    assert len(market.requests) == requests  # a target that matches needs no network to say so


def test_check_sees_a_changed_version_config_and_prune(lbctl, market, tmp_path, home):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.0.0"\n')
    assert lbctl("sync", file).exit_code == 0
    extra = tmp_path / "extra.lbpkg"
    extra.write_bytes(make_lbpkg("me", "extra", "0.1.0"))
    assert lbctl("install", extra).exit_code == 0
    before = tree_snapshot(home)

    assert check(lbctl, file, code=0)  # what the file lists matches; without --prune the extra plugin is fine
    pruned = check(lbctl, file, "--prune", "--json", code=1).json["data"]
    assert pruned["actions"][0]["id"] == "me/extra" and pruned["actions"][0]["action"] == "uninstall"
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.1.0"\n')
    updated = check(lbctl, file, "--json", code=1).json["data"]
    assert [(a["action"], a["from"], a["to"]) for a in updated["actions"]] == [("update", "1.0.0", "1.1.0")]
    file.write_text('[[plugin]]\nid = "acme/echo"\nversion = "==1.0.0"\n[plugin.config]\ncount = 3\n')
    configured = check(lbctl, file, "--json", code=1).json["data"]
    assert [a["action"] for a in configured["actions"]] == ["config"]
    assert tree_snapshot(home) == before


def test_check_of_an_invalid_file_is_bad_input_not_drift(lbctl, market, tmp_path):
    file = tmp_path / "plugins.toml"
    file.write_text('[[plugin]]\nid = "acme/echo"\nflavour = "x"\n')
    assert check(lbctl, file, code=2)


@pytest.mark.langbot
def test_check_on_langbot_and_on_several_targets_sends_nothing_that_changes(lb, lbctl):  # noqa: F811
    lb.publish("watched", "1.0.0")
    pid = f"{lb.author}/watched"
    file = plugins_file(lb, f'[[plugin]]\nid = "{pid}"\n[plugin.config]\ngreeting = "kept"\n')
    drifted = lb.json("sync", "--check", str(file), code=1)
    assert drifted["data"]["drift"] is True and lb.mutating() == [] and pid not in lb.server.plugin_ids()

    lb.json("sync", str(file))
    lb.requests.clear()
    assert lb.json("sync", "--check", str(file))["data"] == {"actions": [], "drift": False, "target": lb.server.url}
    lb.server.api(f"/plugins/{pid}/config", method="PUT", body={"greeting": "changed by hand", "api_key": ""})
    # LangBot restarts the plugin after a config change: --wait-ready waits until it is listed again.
    by_hand = lb.json("--wait-ready", "60", "sync", "--check", str(file), code=1)
    assert [(a["id"], a["action"], a["reason"]) for a in by_hand["data"]["actions"]] == [
        (pid, "config", "set greeting")]
    assert lb.mutating() == []

    # Several targets: each has its own plan and drift; the exit code is the worst (the empty local one drifts).
    lb.json("--wait-ready", "60", "sync", str(file))
    lb.requests.clear()
    fleet = lbctl("--target", lb.url, "--target", "local", "--index-url", lb.market.url, "sync", "--check",
                  str(file), "--json")
    assert fleet.exit_code == 1, fleet.output
    parts = {t["target"]: t for t in fleet.json["data"]["targets"]}
    assert (parts[lb.url]["exit_code"], parts[lb.url]["data"]["drift"]) == (0, False)
    assert (parts["local"]["exit_code"], parts["local"]["data"]["drift"]) == (1, True)
    assert lb.mutating() == []
