"""Issue 11, items 3, 6, 7 and 13: the disk. A damaged or replaced cache is never trusted; a full, read-only or
blocked home or cache is a one-line exit 6 with nothing half-written; what a killed run leaves is removed by the
next run; everything lbctl keeps is owner-only whatever the umask.

Full and read-only file systems are real: a small tmpfs or a read-only bind mount in a private mount namespace
(`unshare`), seen only by the lbctl child process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

from conftest import FIXTURE_ID, tree_snapshot
from fakemarket import API, FakeMarket
from hardening_support import finish, one_line_error, read_only, run_cli, spawn, tmpfs
from pkgfactory import make_lbpkg


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def downloads(market: FakeMarket) -> int:
    return sum(p.startswith(f"{API}/plugins/download/") for p in market.paths("GET"))


# item 3: the cache is checked against the sha256 it is filed under --------------------------------------------


def test_a_replaced_cached_package_is_dropped_and_downloaded_again(lbctl, market, tmp_path, home):
    genuine = make_lbpkg("acme", "echo", "1.0.0")
    market.add(genuine)
    assert lbctl("install", "acme/echo").exit_code == 0
    assert lbctl("uninstall", "acme/echo").exit_code == 0
    cached = tmp_path / "cache" / "packages" / f"{sha256(genuine)}.lbpkg"
    cached.write_bytes(make_lbpkg("acme", "echo", "1.0.0", label="impostor"))  # valid, same id and version

    run = lbctl("install", "acme/echo", "--json")

    assert run.exit_code == 0, run.output
    show = lbctl("show", "acme/echo", "--json").json["data"]["plugin"]
    assert (show["sha256"], show["label"]) == (sha256(genuine), "echo")
    assert downloads(market) == 2
    assert cached.read_bytes() == genuine
    assert lbctl("verify", "--json").json["data"]["ok"] == ["acme/echo"]


def test_a_truncated_cached_package_is_downloaded_again(lbctl, market, tmp_path):
    genuine = make_lbpkg("acme", "echo", "1.0.0")
    market.add(genuine)
    assert lbctl("download", "acme/echo", "-d", tmp_path / "out").exit_code == 0
    cached = tmp_path / "cache" / "packages" / f"{sha256(genuine)}.lbpkg"
    cached.write_bytes(genuine[: len(genuine) // 2])

    run = lbctl("install", "acme/echo==1.0.0", "--json")

    assert run.exit_code == 0, run.output
    assert downloads(market) == 2 and cached.read_bytes() == genuine


def test_a_damaged_cached_package_is_not_served_offline(lbctl, market, tmp_path, home):
    genuine = make_lbpkg("acme", "echo", "1.0.0")
    market.add(genuine)
    assert lbctl("download", "acme/echo", "-d", tmp_path / "out").exit_code == 0
    (tmp_path / "cache" / "packages" / f"{sha256(genuine)}.lbpkg").write_bytes(genuine[:-1] + b"x")

    run = lbctl("--offline", "install", "acme/echo", "--json")

    assert run.exit_code == 5, run.output
    assert not (home / "state.json").exists()


def test_an_index_entry_that_is_not_a_sha256_is_ignored(lbctl, tmp_path, home):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.lbpkg").write_bytes(make_lbpkg("acme", "echo", "1.0.0"))
    index = tmp_path / "cache" / "index"
    index.mkdir(parents=True)
    (tmp_path / "cache" / "packages").mkdir()  # so that packages/../../outside/x.lbpkg resolves
    (index / "acme__echo==1.0.0").write_text("../../outside/x")

    run = lbctl("--offline", "install", "acme/echo", "--json")

    assert run.exit_code == 5, run.output
    assert not (home / "state.json").exists()
    assert lbctl("cache", "list", "--json").json["data"]["files"] == []


# item 6: environments lbctl cannot use ------------------------------------------------------------------------


def packages(tmp_path: Path, count: int, size: int) -> list[Path]:
    """`count` packages of about `size` bytes each (incompressible)."""
    paths = []
    for i in range(count):
        path = tmp_path / "pkgs" / f"p{i}.lbpkg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(make_lbpkg("disk", f"p{i}", "1.0.0", extra_files={"blob.bin": os.urandom(size)}))
        paths.append(path)
    return paths


def inside(tmp_path: Path, mounts: list[str], command: str, listing: str) -> tuple[str, list[str]]:
    """Run `lbctl COMMAND` and then list the files under `listing`, both in one mount namespace (the mounts
    vanish with it); returns lbctl's output with its exit code, and the files."""
    script = tmp_path / "inside.sh"
    script.write_text(f'"$PYTHON" -m lbctl {command} > "$OUT" 2>&1; echo "exit=$?" >> "$OUT"; '
                      f'find "{listing}" -type f | sort > "$FILES"\n')
    env = {"PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "FILES": str(tmp_path / "files")}
    run = run_cli("--version", env=env, mounts=[*mounts, f"sh {script}"])
    assert run.exit_code == 0, run.output
    return (tmp_path / "out").read_text(), (tmp_path / "files").read_text().split()


def test_a_full_disk_under_the_home_is_exit_6_and_leaves_no_orphan(tmp_path, home):
    home.mkdir()
    paths = packages(tmp_path, 3, 150_000)  # two fit in 400 KiB, the third does not

    report, files = inside(tmp_path, [tmpfs(home, "400k")], "install " + " ".join(map(str, paths)) + " --json",
                           str(home))

    assert "exit=6" in report, report
    error = json.loads(report.splitlines()[0])["errors"][0]
    assert error["code"] == "environment_unusable" and "no space left" in error["message"], error
    assert [f for f in files if not f.endswith("/.lock")] == [], files


def test_a_full_cache_disk_is_exit_6_and_leaves_no_partial_download(market, tmp_path, home):
    cache = tmp_path / "cache"
    cache.mkdir()
    market.add(make_lbpkg("acme", "big", "1.0.0", extra_files={"blob.bin": os.urandom(600_000)}))

    report, files = inside(tmp_path, [tmpfs(cache, "256k")], "install acme/big --json", str(cache))

    assert "exit=6" in report and "no space left" in report, report
    assert files == []
    assert not home.exists()


def test_a_read_only_home_is_exit_6_and_reading_still_works(lbctl, tmp_path, home, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    other = tmp_path / "other.lbpkg"
    other.write_bytes(make_lbpkg("ro", "other", "1.0.0"))
    before = tree_snapshot(home)

    for args in (("install", str(other)), ("uninstall", FIXTURE_ID), ("config", "set", FIXTURE_ID, "greeting=x")):
        run = run_cli(*args, mounts=read_only(home))
        one_line_error(run, 6)
        assert "read-only" in run.stderr, run.output
    listed = run_cli("list", "--json", mounts=read_only(home))
    assert listed.exit_code == 0 and [p["id"] for p in listed.json["data"]["plugins"]] == [FIXTURE_ID]
    doctor = run_cli("doctor", "--offline", "--json", mounts=read_only(home))
    checks = {c["name"]: c for c in doctor.json["data"]["checks"]}
    assert doctor.exit_code == 1 and checks["environment"]["ok"] is False, doctor.output
    assert "read-only" in checks["environment"]["detail"]
    assert tree_snapshot(home) == before


def test_a_home_that_is_a_dangling_link_is_exit_6(lbctl, tmp_path, home, fixture_lbpkg):
    home.symlink_to(tmp_path / "gone" / "home")

    run = lbctl("install", fixture_lbpkg)

    one_line_error(run, 6)
    assert "symbolic link" in run.stderr and "does not exist" in run.stderr
    doctor = lbctl("doctor", "--offline", "--json")
    assert doctor.exit_code == 1 and "does not exist" in doctor.json["data"]["checks"][0]["detail"]
    assert not (tmp_path / "gone").exists()


def test_a_home_below_a_file_is_exit_6(lbctl, tmp_path, fixture_lbpkg, monkeypatch):
    (tmp_path / "blocker").write_text("not a directory")
    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "blocker" / "home"))

    run = lbctl("install", fixture_lbpkg)

    one_line_error(run, 6)
    assert "is a file" in run.stderr


def test_a_cache_path_that_is_a_file_is_exit_6(lbctl, market, tmp_path, home):
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    (tmp_path / "cache").write_text("not a directory")

    run = lbctl("install", "acme/echo")

    one_line_error(run, 6)
    assert "is a file" in run.stderr or "not a directory" in run.stderr
    assert not (home / "state.json").exists()
    assert lbctl("install", "acme/echo", "--no-cache").exit_code == 0


# item 7: what killed runs leave -----------------------------------------------------------------------------


def test_the_next_run_removes_temporary_files_of_killed_runs(lbctl, fixture_lbpkg, tmp_path, home):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    cache = tmp_path / "cache"
    stale = [home / ".state.json.4242.1.tmp", home / "packages" / f".{'a' * 64}.lbpkg.4242.1.tmp",
             cache / "packages" / ".download-0123abcd.part", cache / "index" / ".acme__echo==1.0.0.4242.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    orphan = home / "packages" / f"{'b' * 64}.lbpkg"
    orphan.write_bytes(b"stored for a commit that never came")

    assert lbctl("list").exit_code == 0

    assert [p for p in stale + [orphan] if p.exists()] == []
    assert lbctl("verify").exit_code == 0


def test_a_live_download_keeps_its_partial_file(market, tmp_path, home):
    data = make_lbpkg("acme", "echo", "1.0.0")
    market.add(data)
    market.trickle_downloads = 0.05  # about 4 s for the whole package
    downloading = spawn(["install", "acme/echo", "--json"])
    started = time.monotonic()
    part = tmp_path / "cache" / "packages"
    while not list(part.glob(".download-*.part")):
        assert time.monotonic() - started < 20 and downloading.poll() is None, "the download never started"
        time.sleep(0.02)

    sweep = run_cli("list")  # another run, while the first one writes

    assert sweep.exit_code == 0, sweep.output
    assert list(part.glob(".download-*.part")), "the sweep removed a file a live process was writing"
    result = finish(downloading, started=started)
    assert result.exit_code == 0, result.output
    assert (part / f"{sha256(data)}.lbpkg").read_bytes() == data


def test_a_download_killed_half_way_is_cleaned_by_the_next_run(market, tmp_path, home):
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    market.trickle_downloads = 0.05
    downloading = spawn(["install", "acme/echo"])
    part = tmp_path / "cache" / "packages"
    started = time.monotonic()
    while not list(part.glob(".download-*.part")):
        assert time.monotonic() - started < 20, "the download never started"
        time.sleep(0.02)
    downloading.send_signal(signal.SIGKILL)
    finish(downloading, started=started)
    assert list(part.glob(".download-*.part"))

    assert run_cli("list").exit_code == 0

    assert list(part.glob(".*")) == []


# item 13: owner-only whatever the umask ----------------------------------------------------------------------


def test_everything_lbctl_keeps_is_owner_only_under_umask_000(market, tmp_path, home, fixture_lbpkg):
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    filed = tmp_path / "filed.lbpkg"
    filed.write_bytes(make_lbpkg("acme", "filed", "1.0.0", config=[{"name": "doc", "type": "file"}]))
    (tmp_path / "doc.txt").write_text("hello")

    for args in (("install", "acme/echo"), ("install", str(fixture_lbpkg)), ("config", "set", FIXTURE_ID, "greeting=x"),
                 ("install", str(filed)), ("config", "set", "acme/filed", f"doc=@{tmp_path / 'doc.txt'}")):
        run = run_cli(*args, umask=0)
        assert run.exit_code == 0, run.output

    cache = tmp_path / "cache"
    for root in (home, cache):
        modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
        wrong = {path: oct(mode) for path, mode in modes.items()
                 if mode != (0o700 if Path(tmp_path / path).is_dir() else 0o600)}
        assert wrong == {}, wrong
    assert json.loads((home / "state.json").read_text())["plugins"]


def test_purge_on_a_full_disk_is_exit_6_and_all_or_nothing(tmp_path, home, fixture_lbpkg):
    home.mkdir()
    script = tmp_path / "purge.sh"
    script.write_text(f"""
set -e
"$PYTHON" -m lbctl install {fixture_lbpkg} > /dev/null
"$PYTHON" -c 'import sys; from pathlib import Path; from lbctl.runtime.storage import Storage
s = Storage(Path(sys.argv[1]) / "storage.db"); [s.set("plugin", "{FIXTURE_ID}", f"k{{i}}", b"x" * 1000) for i in range(50)]' "$LBCTL_HOME"
dd if=/dev/zero of="$LBCTL_HOME/filler" bs=4096 > /dev/null 2>&1 || true
set +e
"$PYTHON" -m lbctl uninstall {FIXTURE_ID} --purge --yes --json > "$OUT" 2>&1
echo "exit=$?" >> "$OUT"
rm -f "$LBCTL_HOME/filler"
"$PYTHON" -c 'import json, sqlite3, sys; from pathlib import Path; home = Path(sys.argv[1])
state = json.loads((home / "state.json").read_text())
rows = sqlite3.connect(home / "storage.db").execute("select count(*) from storage").fetchone()[0]
print(json.dumps([sorted(state["plugins"]), sorted(state["config"]), rows]))' "$LBCTL_HOME" > "$FILES"
""")
    env = {"PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "FILES": str(tmp_path / "files")}

    run = run_cli("--version", env=env, mounts=[tmpfs(home, "2m"), f"sh {script}"])

    assert run.exit_code == 0, run.output
    report = (tmp_path / "out").read_text()
    assert "exit=10" not in report and "internal error" not in report, report
    plugins, config, rows = json.loads((tmp_path / "files").read_text())
    if "exit=0" in report:
        assert (plugins, config, rows) == ([], [], 0), report
    else:
        assert "exit=6" in report, report
        assert (plugins, config, rows) == ([FIXTURE_ID], [FIXTURE_ID], 50), report
