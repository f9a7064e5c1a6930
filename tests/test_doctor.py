"""`lbctl doctor`: one test per check that can fail, the all-ok case, and the JSON shape."""

from __future__ import annotations

import importlib.metadata
import json
import socket

import pytest
from pkgfactory import make_lbpkg

from conftest import FIXTURE_ID

CHECKS = ["environment", "packages", "config", "dependencies", "cache", "marketplace", "runtime", "host"]


def checks(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.json["data"]["checks"]}


@pytest.fixture
def installed(lbctl, fixture_lbpkg, home):
    result = lbctl("install", fixture_lbpkg)
    assert result.exit_code == 0, result.output
    return next((home / "packages").glob("*.lbpkg"))


@pytest.fixture
def market(market):
    market.add(make_lbpkg("acme", "echo", "1.0.0"), install_count=3)
    return market


def test_all_ok_with_a_reachable_marketplace(lbctl, installed, market):
    result = lbctl("doctor", "--json")

    assert result.exit_code == 0, result.output
    doc = result.json
    assert (doc["command"], doc["status"], doc["errors"]) == ("doctor", "success", [])
    assert [c["name"] for c in doc["data"]["checks"]] == CHECKS
    for check in doc["data"]["checks"]:
        assert check["ok"] is True, check
        assert isinstance(check["detail"], str) and check["detail"]
    assert checks(result)["host"]["detail"] == "no host running"
    assert "1 plugin" in checks(result)["marketplace"]["detail"]
    assert market.paths("POST") == ["/api/v1/marketplace/extensions/search"]
    assert market.bodies[-1]["page_size"] == 1


def test_table_output_is_one_line_per_check(lbctl, installed, market):
    result = lbctl("doctor")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", name] for name in CHECKS]
    assert result.stderr == ""


def test_offline_skips_the_marketplace(lbctl, installed):
    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 0, result.output
    assert checks(result)["marketplace"] == {"name": "marketplace", "ok": True, "detail": "offline", "hint": None}


def test_corrupt_state_fails_the_environment_check(lbctl, home):
    home.mkdir()
    (home / "state.json").write_text("{not json")

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1
    found = checks(result)
    assert found["environment"]["ok"] is False
    assert "not valid JSON" in found["environment"]["detail"]
    assert found["packages"]["ok"] is False and "not checked" in found["packages"]["detail"]


def test_state_from_a_newer_lbctl_fails_the_environment_check(lbctl, home):
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"schema": 99, "plugins": {}}))

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1
    assert "schema 99" in checks(result)["environment"]["detail"]


def test_missing_package_file_fails_the_packages_check(lbctl, installed):
    installed.unlink()

    result = lbctl("doctor", "--offline")

    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if " packages " in line)
    assert line.startswith("FAIL") and f"missing: {FIXTURE_ID}" in line
    assert "lbctl install --force" in result.stderr


def test_a_failure_and_its_hint_are_printed_once(lbctl, installed):
    installed.unlink()

    result = lbctl("doctor", "--offline")

    assert result.exit_code == 1
    hint = "Reinstall them with `lbctl install --force ID`; `lbctl verify` lists them."
    assert (result.stdout + result.stderr).count(hint) == 1, result.output
    assert [line for line in result.stdout.splitlines() if line.startswith("FAIL")] == [
        f"FAIL packages      missing: {FIXTURE_ID}"]
    assert result.stderr == f"error: packages: missing: {FIXTURE_ID}\nhint: {hint}\n"


def test_tampered_package_fails_the_packages_check(lbctl, installed):
    installed.write_bytes(installed.read_bytes() + b"tampered")

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1
    found = checks(result)["packages"]
    assert found["ok"] is False and f"sha256 mismatch: {FIXTURE_ID}" in found["detail"]


def test_missing_required_config_fails_the_config_check(lbctl, tmp_path):
    schema = [{"name": "api_key", "type": "string", "required": True, "label": {"en_US": "API key"}}]
    package = tmp_path / "acme-needkey-1.0.0.lbpkg"
    package.write_bytes(make_lbpkg("acme", "needkey", "1.0.0", config=schema))
    assert lbctl("install", package).exit_code == 0

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1
    found = checks(result)["config"]
    assert found["ok"] is False and "acme/needkey (api_key)" in found["detail"]
    assert lbctl("config", "set", "acme/needkey", "api_key=s3cret").exit_code == 0
    assert lbctl("doctor", "--offline").exit_code == 0


def test_unreachable_marketplace_fails(lbctl, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LBCTL_INDEX_URL", f"http://127.0.0.1:{port}")

    result = lbctl("doctor", "--json")

    assert result.exit_code == 1
    found = checks(result)["marketplace"]
    assert found["ok"] is False and "cannot connect" in found["detail"]
    assert [c["name"] for c in result.json["data"]["checks"] if not c["ok"]] == ["marketplace"]


@pytest.mark.parametrize("broken", ["notjson", "noenvelope", "code", "types"])
def test_marketplace_answer_not_understood_fails(lbctl, market, broken):
    market.broken = broken

    result = lbctl("doctor", "--json")

    assert result.exit_code == 1
    found = checks(result)["marketplace"]
    assert found["ok"] is False and "does not understand" in found["detail"]


def test_runtime_not_installed_fails(lbctl, monkeypatch):
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "langbot-plugin":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 1
    found = checks(result)["runtime"]
    assert found["ok"] is False and "not installed" in found["detail"]
    assert "lbctl[runtime]" in found["hint"]


def test_runtime_version_is_reported(lbctl):
    result = lbctl("doctor", "--offline", "--json")

    version = importlib.metadata.version("langbot-plugin")
    assert checks(result)["runtime"]["detail"] == f"langbot-plugin {version} installed"


def test_running_host_reports_its_runtime_version(lbctl, home, monkeypatch):
    from lbctl.runtime import client

    (home / "runtime").mkdir(parents=True)
    (home / "runtime" / "host.sock").touch()
    status = {"host": True, "runtime_version": "0.7.18",
              "plugins": [{"id": "a/b", "state": "running", "error": None},
                          {"id": "c/d", "state": "failed", "error": "boom"}]}
    monkeypatch.setattr(client.HostClient, "status", lambda self: status)

    result = lbctl("doctor", "--offline", "--json")

    found = checks(result)["host"]
    assert found["ok"] is True
    assert found["detail"].startswith("up, runtime 0.7.18, 2 plugins, failed: c/d; ")


def test_stale_host_socket_is_not_a_failure(lbctl, home):
    (home / "runtime").mkdir(parents=True)
    (home / "runtime" / "host.sock").touch()

    result = lbctl("doctor", "--offline", "--json")

    assert result.exit_code == 0, result.output
    assert checks(result)["host"]["detail"].startswith("no host running")
