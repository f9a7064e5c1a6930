"""The environment store: atomic, versioned writes, the inter-process lock, and crash safety (spec §7)."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURE_ID, tree_snapshot
from lbctl.errors import LockedError, StateCorruptError
from lbctl.state import SCHEMA, Environment
from pkgfactory import make_lbpkg


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def summary(home: Path) -> frozenset[tuple[str, str, str]]:
    """What a crash test compares: the (id, version, sha256) of every installed plugin."""
    return frozenset((r.id, r.version, r.sha256) for r in Environment(home).load().plugins.values())


def assert_packages_present(home: Path) -> None:
    """Every sha256 the state refers to (current and previous) has its intact package file."""
    for record in Environment(home).load().plugins.values():
        for digest in filter(None, (record.sha256, record.previous_sha256)):
            path = home / "packages" / f"{digest}.lbpkg"
            assert path.is_file(), f"{record.id}: {path.name} is missing"
            assert sha256(path.read_bytes()) == digest, f"{record.id}: {path.name} is damaged"


def one_line_error(result, code: int = 6) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: ") and all(ln.startswith(("error: ", "hint: ")) for ln in lines)
    assert len(lines) <= 2 and "Traceback" not in result.stderr, result.output


# atomic, versioned writes -------------------------------------------------------------------------------


def test_state_file_is_private_versioned_and_written_atomically(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    state_file = home / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    data = json.loads(state_file.read_text())
    assert data["schema"] == SCHEMA == 1
    assert data["revision"] == 1 and list(data["plugins"]) == [FIXTURE_ID]
    assert not [p.name for p in home.rglob("*.tmp")], "no temporary file is left behind"


def test_unchanged_state_is_not_rewritten(lbctl, fixture_lbpkg, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = (home / "state.json").stat().st_mtime_ns, (home / "state.json").stat().st_ino
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("disable", "nobody/nothing").exit_code == 5
    assert ((home / "state.json").stat().st_mtime_ns, (home / "state.json").stat().st_ino) == before


def test_unknown_top_level_keys_survive_a_rewrite(lbctl, fixture_lbpkg, home):
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"schema": 1, "revision": 4, "plugins": {}, "config": {},
                                                 "written_by": "a newer lbctl 1.x"}))
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    data = json.loads((home / "state.json").read_text())
    assert data["written_by"] == "a newer lbctl 1.x" and data["revision"] == 5


def test_newer_schema_is_refused_with_a_clear_error(lbctl, fixture_lbpkg, home):
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"schema": SCHEMA + 1, "revision": 1, "plugins": {}, "config": {}}))
    before = tree_snapshot(home)

    result = lbctl("list")
    one_line_error(result, 6)
    assert "schema" in result.stderr and "upgrade" in result.stderr.lower()
    doc = lbctl("list", "--json").json
    assert doc["exit_code"] == 6 and doc["errors"][0]["code"] == "state_corrupt"

    one_line_error(lbctl("install", fixture_lbpkg), 6)
    assert tree_snapshot(home) == before, "an lbctl that does not understand the state must not rewrite it"


CORRUPT = {
    "not json": b"{not json",
    "empty": b"",
    "binary": b"\xff\xfe\x00garbage",
    "a list": b"[]",
    "plugins is a list": b'{"schema": 1, "plugins": []}',
    "schema is a string": b'{"schema": "1", "plugins": {}}',
    "record is a string": b'{"schema": 1, "plugins": {"a/b": "oops"}}',
    "record misses fields": b'{"schema": 1, "plugins": {"a/b": {"id": "a/b"}}}',
    "config is a string": b'{"schema": 1, "plugins": {}, "config": "oops"}',
    "revision is not a number": b'{"schema": 1, "revision": "x", "plugins": {}}',
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_state_gives_one_line_error(case, lbctl, fixture_lbpkg, home):
    home.mkdir()
    (home / "state.json").write_bytes(CORRUPT[case])
    before = tree_snapshot(home)

    result = lbctl("list")
    one_line_error(result, 6)
    assert "state.json" in result.stderr
    doc = lbctl("list", "--json").json
    assert doc["errors"][0]["code"] == "state_corrupt", doc
    one_line_error(lbctl("install", fixture_lbpkg), 6)
    assert tree_snapshot(home) == before


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_state_raises_state_corrupt_error(case, home):
    home.mkdir()
    (home / "state.json").write_bytes(CORRUPT[case])
    with pytest.raises(StateCorruptError):
        Environment(home).load()


# transactions -------------------------------------------------------------------------------------------


def test_transaction_is_rolled_back_on_any_exception(home):
    env = Environment(home)
    with env.transaction() as state:
        state.config["a/b"] = {"k": 1}
    before = tree_snapshot(home)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with env.transaction() as state:
                state.config["a/b"]["k"] = 2
                state.config["c/d"] = {}
                raise exc
        assert tree_snapshot(home) == before
    assert env.load().config == {"a/b": {"k": 1}}


def test_interrupt_in_the_middle_of_an_install_changes_nothing(lbctl, tmp_path, home, monkeypatch):
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"p{i}.lbpkg")
        paths[-1].write_bytes(make_lbpkg("crash", f"p{i}", "1.0.0"))
    assert lbctl("install", *paths[:2]).exit_code == 0
    before = summary(home)

    calls = []
    real_store = Environment.store_package

    def store_then_interrupt(self, data, digest):
        calls.append(digest)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_store(self, data, digest)

    monkeypatch.setattr(Environment, "store_package", store_then_interrupt)
    result = lbctl("install", *paths, "--force")
    monkeypatch.setattr(Environment, "store_package", real_store)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.stderr
    assert summary(home) == before
    assert_packages_present(home)
    assert lbctl("install", *paths).exit_code == 0
    assert len(summary(home)) == 6


def test_garbage_collection_keeps_current_and_previous_packages(lbctl, tmp_path, home):
    versions = []
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        data = make_lbpkg("gc", "p", version)
        (tmp_path / f"{version}.lbpkg").write_bytes(data)
        versions.append(sha256(data))
        assert lbctl("install", tmp_path / f"{version}.lbpkg").exit_code == 0
    stored = {p.stem for p in (home / "packages").glob("*.lbpkg")}
    assert stored == set(versions[1:]), "3.0.0 and its previous package (2.0.0) are kept, 1.0.0 is collected"
    record = Environment(home).load().plugins["gc/p"]
    assert (record.previous_sha256, record.previous_version) == (versions[1], "2.0.0")


def test_a_shown_package_keeps_its_description_until_the_package_goes(lbctl, tmp_path, home):
    paths = [tmp_path / f"{v}.lbpkg" for v in ("1.0.0", "2.0.0", "3.0.0")]
    for path, version in zip(paths, ("1.0.0", "2.0.0", "3.0.0")):
        path.write_bytes(make_lbpkg("gc", "p", version))
        assert lbctl("install", path).exit_code == 0
        assert lbctl("show", "gc/p").exit_code == 0

    described = {p.stem for p in (home / "packages").glob("*.json")}
    assert described == {p.stem for p in (home / "packages").glob("*.lbpkg")}  # 1.0.0's went with its package
    record = Environment(home).load().plugins["gc/p"]
    assert Environment(home).package_info(record.sha256).version == "3.0.0"


@pytest.mark.parametrize("damage", [b"{", b"[]", b'{"author": 1}', None])
def test_show_reads_the_package_again_when_its_description_is_damaged_or_gone(lbctl, fixture_lbpkg, home, damage):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert not list((home / "packages").glob("*.json"))  # written by the first show, not by the install
    expected = lbctl("show", FIXTURE_ID, "--json").json["data"]
    description = next((home / "packages").glob("*.json"))
    if damage is None:
        description.unlink()
    else:
        description.write_bytes(damage)

    assert lbctl("show", FIXTURE_ID, "--json").json["data"] == expected
    assert json.loads(description.read_text())["sha256"] == description.stem  # written again


# the lock -----------------------------------------------------------------------------------------------


def test_lock_times_out_with_locked_error(home):
    with Environment(home).lock():
        started = time.monotonic()
        with pytest.raises(LockedError):
            with Environment(home, lock_timeout=0.5).lock():
                pass
        assert 0.45 <= time.monotonic() - started < 1.0


def test_second_process_on_a_locked_environment_exits_6(lbctl, fixture_lbpkg, home, monkeypatch):
    monkeypatch.setenv("LBCTL_LOCK_TIMEOUT", "0.5")
    assert lbctl("list").exit_code == 0  # imports done, so the timing below is the lock wait
    with Environment(home).lock():
        before = tree_snapshot(home)
        started = time.monotonic()
        result = lbctl("install", fixture_lbpkg, "--json")
        elapsed = time.monotonic() - started
        assert result.exit_code == 6, result.output
        doc = result.json
        assert (doc["status"], doc["errors"][0]["code"]) == ("error", "locked")
        assert doc["errors"][0]["hint"]
        assert 0.45 <= elapsed < 1.5, f"waited {elapsed:.2f}s"
        table = lbctl("install", fixture_lbpkg)
        assert table.exit_code == 6 and "locked" in table.stderr
        assert tree_snapshot(home) == before
    assert lbctl("install", fixture_lbpkg).exit_code == 0


def test_lock_held_by_another_process(lbctl, fixture_lbpkg, home, monkeypatch):
    monkeypatch.setenv("LBCTL_LOCK_TIMEOUT", "0.5")
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(home)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from lbctl.state import Environment\n"
         "with Environment(Path(sys.argv[1])).lock():\n print('locked', flush=True); time.sleep(60)", str(home)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (("install", fixture_lbpkg, "--force"), ("disable", FIXTURE_ID), ("uninstall", FIXTURE_ID)):
            doc = lbctl(*args, "--json").json
            assert (doc["exit_code"], doc["errors"][0]["code"]) == (6, "locked"), doc
        assert lbctl("list").exit_code == 0, "reading needs no lock"
        assert tree_snapshot(home) == before
    finally:
        holder.kill()
        holder.wait()
    assert lbctl("uninstall", FIXTURE_ID).exit_code == 0, "the lock dies with its process"


# SIGKILL at a random moment -----------------------------------------------------------------------------

PLUGINS = 20
KILL_ITERATIONS = 25
KILL_BUDGET_S = 30.0


def test_sigkill_during_install_leaves_the_old_or_the_new_state(tmp_path, home):
    """Kill `lbctl install <20 packages> --force` at random moments; the state is always before or after."""
    packages: dict[str, list[Path]] = {}
    produces: dict[str, frozenset] = {}
    for version in ("1.0.0", "2.0.0"):
        packages[version], rows = [], set()
        for i in range(PLUGINS):
            data = make_lbpkg("kill", f"p{i:02d}", version)
            path = tmp_path / "pkgs" / f"kill-p{i:02d}-{version}.lbpkg"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            packages[version].append(path)
            rows.add((f"kill/p{i:02d}", version, sha256(data)))
        produces[version] = frozenset(rows)

    def command(version: str) -> list[str]:
        return [sys.executable, "-m", "lbctl", "install", *map(str, packages[version]), "--force", "-q"]

    started = time.monotonic()
    subprocess.run(command("1.0.0"), check=True, capture_output=True, timeout=60)
    full_run = time.monotonic() - started  # kill anywhere from start-up to just after the commit
    assert summary(home) == produces["1.0.0"]

    rng = random.Random(1234)
    outcomes: list[str] = []
    deadline = time.monotonic() + KILL_BUDGET_S
    for i in range(KILL_ITERATIONS):
        if time.monotonic() > deadline and i >= 10:
            break
        version = ("2.0.0", "1.0.0")[i % 2]
        before = summary(home)
        proc = subprocess.Popen(command(version), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, max(0.3, full_run * 1.1)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = summary(home)  # must load: never a half-written state.json
        assert after in (before, produces[version]), f"iteration {i}: the state is neither before nor after"
        outcomes.append("after" if after == produces[version] and after != before else "before")
        assert_packages_present(home)

    subprocess.run(command("2.0.0"), check=True, capture_output=True, timeout=60)
    assert summary(home) == produces["2.0.0"], f"outcomes of the kills: {outcomes}"
    assert_packages_present(home)


def test_state_json_checks_the_type_of_every_field_of_a_record():
    from lbctl.models import Record
    from lbctl.state import RECORD_FIELDS

    assert set(RECORD_FIELDS) == set(Record.__dataclass_fields__)
