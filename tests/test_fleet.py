"""Several targets at once (spec §8), against the simulated LangBot farm of bench/farm.py: the summary output,
--jobs, a target that is down or slow, connections let go, and the work a fleet shares (resolution, task polls).
tests/test_fleet_langbot.py runs the same commands against the suite's real LangBot."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg

sys.path.insert(0, str(REPO / "bench"))

from farm import Farm, FarmOptions  # noqa: E402

FAST = {"latency": 0.005, "prepare_seconds": 0.02, "install_seconds": 0.1, "delete_seconds": 0.02}
IDS = [f"fleet/p{i}" for i in range(4)]


@pytest.fixture
def market():
    with FakeMarket() as market:
        for pid in IDS:
            market.add(make_lbpkg(*pid.split("/"), "1.0.0", config=[]))
        yield market


@pytest.fixture
def farms(market, monkeypatch):
    """farms(count, **options) -> a started Farm on the test's marketplace; its key is LBCTL_API_KEY."""
    started: list[Farm] = []

    def make(count: int, **options) -> Farm:
        farm = Farm(count, market=market, options=FarmOptions(**{**FAST, **options})).start()
        started.append(farm)
        monkeypatch.setenv("LBCTL_API_KEY", farm.api_key)
        return farm

    yield make
    for farm in started:
        farm.close()


def named(farm: Farm, tmp_path: Path) -> str:
    """Targets farm-0, farm-1, … in the user config file; the comma list that selects them all."""
    names = [f"farm-{i}" for i in range(len(farm.instances))]
    (tmp_path / "config.toml").write_text("".join(f'[targets.{n}]\nurl = "{u}"\n' for n, u in zip(names, farm.urls)))
    return ",".join(names)


def plugins_file(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text("".join(f'[[plugin]]\nid = "{pid}"\nversion = "==1.0.0"\n' for pid in ids))
    return path


def package(pid: str) -> bytes:
    return make_lbpkg(*pid.split("/"), "1.0.0", config=[])


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def modes(farm: Farm) -> dict[str, str]:
    return {f"farm-{i.index}": i.mode for i in farm.instances}


# --- what a fleet command prints -------------------------------------------------------------------------------


def test_a_fleet_prints_one_row_per_target_and_a_total_line(farms, lbctl, tmp_path):
    farm = farms(3, down=1 / 3, failing=1 / 3)
    farm.preinstall([package(IDS[0])])
    mode = modes(farm)

    run = lbctl("--target", named(farm, tmp_path), "list")

    assert run.exit_code == 7, run.output
    lines = run.stdout.splitlines()
    assert cells(lines[0]) == ["TARGET", "STATUS", "CHANGED", "ERROR"]
    rows = {cells(line)[0]: cells(line) for line in lines[1:4]}
    assert sorted(rows) == ["farm-0", "farm-1", "farm-2"]
    for name, row in rows.items():
        if mode[name] == "up":
            assert row[1:] == ["ok", "1 plugin"]
        elif mode[name] == "down":
            assert row[1:3] == ["error (7)", "-"] and "is unreachable" in row[3]
        else:
            assert row[1:3] == ["error (6)", "-"] and "internal_error" in row[3]
    assert lines[4:] == ["3 targets: 1 ok, 2 error; exit code 7"]
    assert run.stderr == ""


def test_verbose_adds_each_targets_own_section(farms, lbctl, tmp_path):
    farm = farms(2)
    farm.preinstall([package(IDS[0])])

    run = lbctl("--target", named(farm, tmp_path), "-v", "list")

    assert run.exit_code == 0, run.output
    out = run.stdout
    assert out.index("== farm-0 ==\nfleet/p0 1.0.0 marketplace") < out.index("== farm-1 ==") < out.index("TARGET")
    assert out.rstrip().endswith("2 targets: 2 ok")


def test_what_changed_is_counted_per_target_and_json_keeps_every_action(farms, lbctl, tmp_path):
    farm = farms(2)
    farm.preinstall([package(IDS[0])], instances=[1])
    targets = named(farm, tmp_path)
    file = plugins_file(tmp_path, IDS[:3])

    run = lbctl("--target", targets, "sync", str(file))

    assert run.exit_code == 0, run.output
    rows = [line.split(None, 2) for line in run.stdout.splitlines()[1:3]]
    assert rows == [["farm-0", "ok", "installed 3"], ["farm-1", "ok", "installed 2"]]
    doc = lbctl("--target", targets, "sync", str(file), "--json").json
    assert [(t["target"], t["status"], t["exit_code"], t["errors"]) for t in doc["data"]["targets"]] == [
        ("farm-0", "success", 0, []), ("farm-1", "success", 0, [])]
    assert "no change" in lbctl("--target", targets, "sync", str(file)).stdout
    assert all(sorted(farm.plugin_ids(i)) == IDS[:3] for i in range(2))


def test_a_warning_said_on_many_targets_is_said_once(farms, market, lbctl, tmp_path):
    farm = farms(3)
    url = f"{market.url}/api/v1/marketplace/plugins/download/{IDS[0]}/1.0.0"
    file = tmp_path / "plugins.toml"
    file.write_text(f'[[plugin]]\nid = "{IDS[0]}"\nurl = "{url}"\n')

    run = lbctl("--target", named(farm, tmp_path), "sync", str(file))

    assert run.exit_code == 0, run.output
    warnings = run.stderr.splitlines()
    assert warnings == [f"warning: {IDS[0]}: LangBot records a package from a URL as a local install; it receives "
                        "no updates (3 targets)"]


# --- bounding the work -----------------------------------------------------------------------------------------


def test_jobs_bounds_how_many_targets_are_worked_on_at_once(farms, lbctl, tmp_path, monkeypatch):
    farm = farms(6, latency=0.1)
    targets = named(farm, tmp_path)

    assert lbctl("--target", targets, "--jobs", "2", "list").exit_code == 0
    assert farm.max_busy == 2
    assert farm.max_connections <= 2  # each target lets go of its connection when its part is made
    farm.max_busy = 0
    monkeypatch.setenv("LBCTL_JOBS", "3")
    assert lbctl("--target", targets, "list").exit_code == 0
    assert farm.max_busy == 3
    farm.max_busy = 0
    monkeypatch.delenv("LBCTL_JOBS")
    assert lbctl("--target", targets, "list").exit_code == 0
    assert farm.max_busy == 6  # the default works on many at once


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_jobs_must_be_a_positive_number(lbctl, value):
    run = lbctl("--jobs", value, "list", "--json")
    assert run.exit_code == 2, run.output
    assert run.json["errors"][0]["code"] == "usage"
    assert "--jobs" in run.json["errors"][0]["message"] and "No such option" not in run.json["errors"][0]["message"]


def test_jobs_from_the_user_config_file(farms, lbctl, tmp_path):
    farm = farms(4, latency=0.1)
    targets = named(farm, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("jobs = 1\n" + config.read_text())

    assert lbctl("--target", targets, "list").exit_code == 0
    assert farm.max_busy == 1


def test_the_targets_of_a_fleet_ask_their_questions_at_the_same_time(farms, lbctl, tmp_path):
    farm = farms(6, latency=0.3)
    farm.preinstall([package(IDS[0])])  # a record's origin is the marketplace the instance names (system/info)
    log = farm.record()

    assert lbctl("--target", named(farm, tmp_path), "list").exit_code == 0

    info = [t for _, _, path, t in log if path == "/api/v1/system/info"]
    assert len(info) == 6 and max(info) - min(info) < 1.0  # one after another would take 6 x 0.3 s


def test_a_slow_target_fails_at_its_deadline_and_delays_no_other(farms, lbctl, tmp_path):
    farm = farms(4, slow=0.25, slow_seconds=30)
    log = farm.record()
    slow = next(i for i in farm.instances if i.mode == "slow")
    file = plugins_file(tmp_path, IDS[:2])

    started = time.monotonic()
    run = lbctl("--target", named(farm, tmp_path), "--timeout", "2", "sync", str(file), "--json")
    elapsed = time.monotonic() - started

    assert run.exit_code == 7, run.output
    parts = {t["target"]: t for t in run.json["data"]["targets"]}
    assert parts[f"farm-{slow.index}"]["exit_code"] == 7
    assert "timed out" in parts[f"farm-{slow.index}"]["errors"][0]["message"]
    assert elapsed < 10
    live = [i.index for i in farm.up()]
    assert all(sorted(farm.plugin_ids(i)) == IDS[:2] for i in live)
    # every live instance was done before the slow one's deadline: its wait held up nobody
    last = {i: max(t for index, _, _, t in log if index == i) - started for i in live}
    assert max(last.values()) < 1.8, last


def test_a_target_that_is_down_does_not_stop_the_others(farms, lbctl, tmp_path):
    farm = farms(5, down=0.4)
    file = plugins_file(tmp_path, IDS[:1])

    run = lbctl("--target", named(farm, tmp_path), "sync", str(file), "--json")

    assert run.exit_code == 7 and run.json["status"] == "partial", run.output
    codes = sorted(t["exit_code"] for t in run.json["data"]["targets"])
    assert codes == [0, 0, 0, 7, 7]
    assert all(farm.plugin_ids(i.index) == IDS[:1] for i in farm.up())


# --- work a fleet shares -----------------------------------------------------------------------------------------


def test_each_entry_is_resolved_and_downloaded_once_for_the_whole_fleet(farms, market, lbctl, tmp_path):
    farm = farms(4)
    file = plugins_file(tmp_path, IDS[:3])
    before = len(market.requests)

    assert lbctl("--target", named(farm, tmp_path), "sync", str(file)).exit_code == 0

    paths = market.paths("GET")[before:]
    for pid in IDS[:3]:
        assert paths.count(f"/api/v1/marketplace/plugins/{pid}/versions") == 1, paths
        assert paths.count(f"/api/v1/marketplace/plugins/download/{pid}/1.0.0") == 1, paths


def test_an_entry_that_does_not_resolve_fails_every_target_after_one_question(farms, market, lbctl, tmp_path):
    farm = farms(3)
    before = len(market.requests)

    run = lbctl("--target", named(farm, tmp_path), "sync", str(plugins_file(tmp_path, ["fleet/missing"])), "--json")

    assert run.exit_code == 5, run.output
    assert [t["exit_code"] for t in run.json["data"]["targets"]] == [5, 5, 5]
    assert market.paths("GET")[before:] == ["/api/v1/marketplace/plugins/fleet/missing/versions"]


def test_the_tasks_of_one_instance_are_polled_together(farms, lbctl, tmp_path):
    farm = farms(1, install_seconds=0.3)
    log = farm.record()

    assert lbctl("--target", farm.urls[0], "sync", str(plugins_file(tmp_path, IDS))).exit_code == 0

    polls = [t for _, method, path, t in log if method == "GET" and path.startswith("/api/v1/system/tasks")]
    installs = [t for _, method, path, t in log if method == "POST"]
    assert any(path == "/api/v1/system/tasks" for _, _, path, _ in log)  # one request for every task waited on
    # LangBot runs the four installs one after another (1.2 s); four pollers would ask 4 times each 0.1 s
    assert len(polls) <= (polls[-1] - installs[0]) / 0.1 + 4, len(polls)
    assert sorted(farm.plugin_ids(0)) == IDS


# --- an instance that restarts -------------------------------------------------------------------------------


def test_wait_ready_waits_until_a_restarted_instance_has_its_plugins_back(farms, lbctl, tmp_path):
    farm = farms(1)
    file = plugins_file(tmp_path, IDS[:3])
    assert lbctl("--target", farm.urls[0], "sync", str(file)).exit_code == 0
    log = farm.record()
    farm.restart(0, unavailable=0.3, empty=1.0, per_plugin=0.3)  # 500, then [], then one plugin at a time

    run = lbctl("--target", farm.urls[0], "--wait-ready", "20", "sync", str(file), "--json")

    assert run.exit_code == 0, run.output
    assert [a for a in run.json["data"]["actions"] if a["status"] != "skipped"] == []
    assert [(m, p) for _, m, p, _ in log if m != "GET"] == []  # nothing installed again
    assert any(p == "/healthz" for _, _, p, _ in log)


def test_without_wait_ready_a_sync_acts_on_what_a_restarting_instance_lists(farms, lbctl, tmp_path):
    farm = farms(1)
    file = plugins_file(tmp_path, IDS[:2])
    assert lbctl("--target", farm.urls[0], "sync", str(file)).exit_code == 0
    farm.restart(0, unavailable=0.0, empty=5.0, per_plugin=0.3)

    run = lbctl("--target", farm.urls[0], "sync", str(file), "--json")

    # the [] of a restarting LangBot reads as "nothing installed": what --wait-ready is there for
    assert [(a["action"], a["status"]) for a in run.json["data"]["actions"]] == [("install", "done")] * 2, run.output


# --- interrupted ---------------------------------------------------------------------------------------------


def test_ctrl_c_during_a_fleet_sync_reports_every_target_as_it_holds_it(farms, market, tmp_path):
    """A Ctrl-C in the middle of a sync to several targets: the one envelope lists each target's actions with
    their true status (what a farm instance holds is `done`, nothing else is), and a target not yet started
    says that nothing was sent to it."""
    import json
    import signal

    from hardening_support import finish, handler_installed, spawn

    farm = farms(3, install_seconds=1.0)
    names = named(farm, tmp_path)
    file = plugins_file(tmp_path, IDS)
    proc = spawn(["--target", names, "--jobs", "2", "sync", str(file), "--json"])
    started = time.monotonic()
    while not (handler_installed(proc.pid) and farm.plugin_ids(0) and farm.plugin_ids(1)):  # both mid-apply
        assert proc.poll() is None and time.monotonic() - started < 60, "no install began"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    run = finish(proc, timeout=90, started=started)

    assert run.exit_code == 130, run.output
    doc = json.loads(run.stdout)
    assert (doc["status"], doc["errors"][0]["code"]) == ("error", "interrupted"), doc
    parts = {part["target"]: part for part in doc["data"]["targets"]}
    assert sorted(parts) == ["farm-0", "farm-1", "farm-2"], doc
    for index in (0, 1):
        assert parts[f"farm-{index}"]["data"] is not None, parts[f"farm-{index}"]["errors"]
        actions = parts[f"farm-{index}"]["data"]["actions"]
        done = {a["id"] for a in actions if a["status"] == "done" and a["action"] == "install"}
        assert done == set(farm.plugin_ids(index)), (index, actions)
        assert {a["status"] for a in actions} <= {"done", "planned"}, actions
    assert parts["farm-2"]["data"] is None and farm.plugin_ids(2) == []
    assert "nothing was sent to it" in parts["farm-2"]["errors"][0]["message"]
