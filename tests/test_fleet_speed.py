"""What makes `update --all` of many plugins cheaper (issue 20), with the promises it must keep: a downloaded
package is stored as a hard link to lbctl's cache copy (never to a user's own file), and every stored package
is on disk before the state that records it."""

from __future__ import annotations

import errno
import os

import pytest

from pkgfactory import make_lbpkg

IDS = [f"speed/p{i}" for i in range(5)]


@pytest.fixture
def market(market):
    for pid in IDS:
        market.add(make_lbpkg(*pid.split("/"), "1.0.0", config=[]))
    return market


def stored(home, sha256: str):
    return home / "packages" / f"{sha256}.lbpkg"


def shas(lbctl) -> dict[str, str]:
    return {p["id"]: p["sha256"] for p in lbctl("list", "--json").json["data"]["plugins"]}


def test_a_downloaded_package_is_stored_as_a_link_to_its_cache_copy(lbctl, market, home, tmp_path):
    for pid in IDS:
        market.add(make_lbpkg(*pid.split("/"), "1.1.0", config=[]))
    assert lbctl("install", *(f"{pid}==1.0.0" for pid in IDS)).exit_code == 0

    run = lbctl("update", "--all", "--json")

    assert run.exit_code == 0 and run.json["data"]["summary"] == "updated 5 of 5", run.output
    for pid, sha in shas(lbctl).items():
        cached = tmp_path / "cache" / "packages" / f"{sha}.lbpkg"
        assert os.stat(stored(home, sha)).st_ino == os.stat(cached).st_ino, pid
        assert os.stat(stored(home, sha)).st_mode & 0o777 == 0o600
    assert lbctl("cache", "clear").exit_code == 0
    assert lbctl("verify").exit_code == 0  # the environment's own link survives the cache
    assert lbctl("rollback", IDS[0]).exit_code == 0


def test_a_users_own_package_is_copied_never_linked(lbctl, home, tmp_path):
    path = tmp_path / "mine.lbpkg"
    path.write_bytes(make_lbpkg("speed", "mine", "1.0.0", config=[]))

    assert lbctl("install", str(path)).exit_code == 0

    sha = shas(lbctl)["speed/mine"]
    assert os.stat(stored(home, sha)).st_ino != os.stat(path).st_ino
    path.write_bytes(b"rebuilt in place")  # `lbp build` over the same name must not touch the environment
    assert lbctl("verify").exit_code == 0


def test_a_cache_on_another_file_system_is_copied(lbctl, market, home, tmp_path, monkeypatch):
    def cross_device(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)

    assert lbctl("install", IDS[0]).exit_code == 0

    sha = shas(lbctl)[IDS[0]]
    assert os.stat(stored(home, sha)).st_nlink == 1
    assert lbctl("verify").exit_code == 0


def test_every_stored_package_is_synced_before_the_state_that_records_it(lbctl, market, home, monkeypatch):
    from lbctl import fsutil, state

    order: list[str] = []
    sync, replace = fsutil.fsync_path, os.replace

    def recorded_sync(path):
        order.append(f"sync {path.name}")
        sync(path)

    def recorded_replace(src, dst, *args, **kwargs):
        order.append(f"replace {os.path.basename(dst)}")
        replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(state, "fsync_path", recorded_sync)
    monkeypatch.setattr(os, "replace", recorded_replace)

    assert lbctl("install", *IDS).exit_code == 0

    packages = {f"sync {sha}.lbpkg" for sha in shas(lbctl).values()}
    commit = order.index("replace state.json")
    assert packages <= set(order[:commit]), order
