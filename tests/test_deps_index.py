"""`index serve`, `doctor`'s dependency check and `runtime serve --wheelhouse` argument checks, against
wheelhouses of small wheels made on the spot: no network."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from deps_support import make_wheel
from pkgfactory import make_lbpkg

from lbctl.runtime.process import free_port


@pytest.fixture(autouse=True)
def no_configured_index(monkeypatch):
    for name in ("LBCTL_WHEELHOUSE", "LANGBOT_PLUGIN_PYPI_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def wheelhouse(tmp_path):
    wheels = tmp_path / "wh" / "wheels"
    make_wheel(wheels, "lbctl-test-alpha", "1.0")
    make_wheel(wheels, "lbctl-test-beta", "2.0", requires=("lbctl-test-gamma>=1",))
    return tmp_path / "wh"


def install(lbctl, tmp_path, name: str, requirements: str) -> None:
    path = tmp_path / f"lbctl-tests-{name}-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg("lbctl-tests", name, "0.1.0", config=[],
                                extra_files={"requirements.txt": f"langbot-plugin\n{requirements}"}))
    result = lbctl("install", path)
    assert result.exit_code == 0, result.output


def dependencies(result) -> dict:
    return next(c for c in result.json["data"]["checks"] if c["name"] == "dependencies")


def test_doctor_names_each_requirement_that_does_not_resolve_and_why(lbctl, tmp_path, wheelhouse, monkeypatch):
    install(lbctl, tmp_path, "one", "lbctl-test-alpha\nlbctl-test-missing\n")
    install(lbctl, tmp_path, "two", "lbctl-test-beta\n")
    install(lbctl, tmp_path, "three", "lbctl-test-alpha>=2\n")
    monkeypatch.setenv("LBCTL_WHEELHOUSE", str(wheelhouse))

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1, result.output
    check = dependencies(result)
    assert check["ok"] is False
    assert check["detail"] == (
        f"not resolvable as wheels from wheelhouse {wheelhouse / 'wheels'}: "
        "lbctl-tests/one: lbctl-test-missing (no wheel found); "
        "lbctl-tests/three: lbctl-test-alpha>=2 (no matching wheel; available: 1.0); "
        "lbctl-tests/two: lbctl-test-beta (needs lbctl-test-gamma>=1, no wheel found)")
    assert "lbctl deps download" in check["hint"]
    assert {"code": "check_failed", "message": f"dependencies: {check['detail']}", "hint": check["hint"],
            "plugin": None} in result.json["errors"]


def test_doctor_passes_when_every_requirement_resolves(lbctl, tmp_path, wheelhouse, monkeypatch):
    make_wheel(wheelhouse / "wheels", "lbctl-test-gamma", "1.5")
    install(lbctl, tmp_path, "two", "lbctl-test-beta\nlbctl-test-alpha==1.0\n")
    monkeypatch.setenv("LBCTL_WHEELHOUSE", str(wheelhouse))

    check = dependencies(lbctl("doctor", "--offline", "--json"))

    assert check == {"name": "dependencies", "ok": True, "hint": None,
                     "detail": f"requirements of 1 plugin resolve from wheelhouse {wheelhouse / 'wheels'} (3 packages)"}


def test_doctor_reports_an_unreachable_index_as_such(lbctl, tmp_path, monkeypatch):
    install(lbctl, tmp_path, "one", "lbctl-test-alpha\n")
    monkeypatch.setenv("LANGBOT_PLUGIN_PYPI_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple/")

    check = dependencies(lbctl("doctor", "--json"))

    assert check["ok"] is False and check["detail"].startswith("pip could not reach the package index"), check


def test_doctor_does_not_check_an_index_offline_and_needs_nothing_for_sdk_only_plugins(lbctl, tmp_path):
    install(lbctl, tmp_path, "plain", "")
    assert dependencies(lbctl("doctor", "--offline", "--json"))["detail"] == "no plugin needs more than langbot-plugin"
    install(lbctl, tmp_path, "one", "lbctl-test-alpha\n")
    check = dependencies(lbctl("doctor", "--offline", "--json"))
    assert check["ok"] is True and check["detail"].startswith("not checked: offline (set LBCTL_WHEELHOUSE")


def test_index_serve_is_a_pep_503_index_of_the_wheelhouse_and_nothing_else(tmp_path, wheelhouse):
    port = free_port()
    log = tmp_path / "index.log"
    with open(log, "wb") as stream:
        command = [sys.executable, "-m", "lbctl", "index", "serve", str(wheelhouse), "--port", str(port), "--json"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stream, text=True)
    try:
        url = f"http://127.0.0.1:{port}/simple/"
        _wait_until_up(url, server)
        out = tmp_path / "out"
        got = _pip("download", "--no-deps", "-d", str(out), "-i", url, "LBCTL_Test.Alpha==1.0")
        assert got.returncode == 0, got.stderr
        (alpha,) = (wheelhouse / "wheels").glob("lbctl_test_alpha-*.whl")
        assert (out / alpha.name).read_bytes() == alpha.read_bytes()
        missing = _pip("download", "--no-deps", "-d", str(out), "-i", url, "requests")
        assert missing.returncode == 1 and "No matching distribution found for requests" in missing.stderr
        upload = urllib.request.Request(url.replace("/simple/", "/"), data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(upload, timeout=10)
        assert _page(url + "lbctl-test-alpha/").count("#sha256=" + hashlib.sha256(alpha.read_bytes()).hexdigest()) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, _ = server.communicate(timeout=30)
    assert server.returncode == 0, log.read_text()
    data = json.loads(stdout)["data"]
    assert data["url"] == url and data["root"] == str(wheelhouse / "wheels") and data["requests"] >= 4
    lines = log.read_text().splitlines()
    assert any(f"serving {wheelhouse / 'wheels'} at {url}" in line for line in lines)
    assert any(f'"GET /packages/{alpha.name} HTTP/1.1" 200' in line for line in lines)
    assert any('"GET /simple/requests/ HTTP/1.1" 404' in line for line in lines)  # no fallback to PyPI
    assert not any(" 30" in line.rsplit('"', 1)[-1][:4] for line in lines if "GET /simple/requests/" in line)


def test_runtime_serve_wheelhouse_argument_errors(lbctl, tmp_path, wheelhouse):
    conflict = lbctl("runtime", "serve", "--wheelhouse", wheelhouse, "--connect", "ws://127.0.0.1:1/control/ws")
    assert conflict.exit_code == 2 and "--wheelhouse cannot be combined with --connect" in conflict.stderr
    other = lbctl("runtime", "serve", "--wheelhouse", wheelhouse, "--pypi-index-url", "https://pypi.org/simple")
    assert other.exit_code == 2 and "--pypi-index-url" in other.stderr
    missing = lbctl("runtime", "serve", "--wheelhouse", tmp_path / "nowhere", "--json")
    assert missing.exit_code == 5 and missing.json["errors"][0]["message"].startswith("No wheelhouse at")


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=120)


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "index serve exited early"
        try:
            _page(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("index serve did not come up")


def test_deps_download_with_nothing_to_download_says_so(lbctl, tmp_path):
    install(lbctl, tmp_path, "plain", "")
    result = lbctl("deps", "download", "-d", tmp_path / "wh", "--json")

    assert result.exit_code == 0, result.output
    assert result.json["data"] == {"wheels": [], "path": str(tmp_path / "wh" / "wheels")}
    assert result.json["warnings"] == ["No installed plugin has requirements beyond langbot-plugin: nothing to save."]
    assert not (tmp_path / "wh" / "wheels").exists()


def test_deps_download_refuses_a_bad_target_before_running_pip(lbctl, tmp_path):
    install(lbctl, tmp_path, "one", "lbctl-test-alpha\n")
    for option, value in (("--python-version", "three"), ("--platform", "linux x86")):
        result = lbctl("deps", "download", "-d", tmp_path / "wh", option, value)
        assert result.exit_code == 2 and f"Invalid {option}" in result.stderr, result.output
    assert not (tmp_path / "wh").exists()


def test_deps_download_offline_takes_only_what_the_wheelhouse_already_has(lbctl, tmp_path, wheelhouse):
    make_wheel(wheelhouse / "wheels", "lbctl-test-gamma", "1.5")
    install(lbctl, tmp_path, "two", "lbctl-test-beta\n")
    before = sorted(p.name for p in (wheelhouse / "wheels").iterdir())

    result = lbctl("--offline", "deps", "download", "-d", wheelhouse, "--json")

    assert result.exit_code == 0, result.output
    assert [(w["name"], w["version"], w["plugins"]) for w in result.json["data"]["wheels"]] == [
        ("lbctl-test-beta", "2.0", ["lbctl-tests/two"]), ("lbctl-test-gamma", "1.5", ["lbctl-tests/two"])]
    assert sorted(p.name for p in (wheelhouse / "wheels").iterdir()) == before
    install(lbctl, tmp_path, "one", "lbctl-test-missing\n")
    missing = lbctl("--offline", "deps", "download", "-d", wheelhouse, "--json")
    assert missing.exit_code == 5 and missing.json["errors"][0]["plugin"] == "lbctl-tests/one", missing.output
    assert sorted(p.name for p in (wheelhouse / "wheels").iterdir()) == before


def test_relative_wheelhouse_paths_mean_the_current_directory(lbctl, tmp_path, wheelhouse, monkeypatch):
    make_wheel(wheelhouse / "wheels", "lbctl-test-gamma", "1.5")
    install(lbctl, tmp_path, "two", "lbctl-test-beta\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LBCTL_WHEELHOUSE", "wh")

    saved = lbctl("--offline", "deps", "download", "-d", "wh", "--json")
    check = dependencies(lbctl("doctor", "--offline", "--json"))

    assert saved.exit_code == 0, saved.output
    assert [w["path"] for w in saved.json["data"]["wheels"]] == [
        str(tmp_path / "wh" / "wheels" / "lbctl_test_beta-2.0-py3-none-any.whl"),
        str(tmp_path / "wh" / "wheels" / "lbctl_test_gamma-1.5-py3-none-any.whl")]
    assert check["ok"] is True, check
