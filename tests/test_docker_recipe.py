"""The Docker recipe in examples/docker, run step by step outside Docker: after `lbctl download` nothing comes
from the marketplace, after `lbctl deps download` nothing comes from any index, and the image's command runs
every plugin with its dependencies installed from the baked wheelhouse, twice (a restart reinstalls nothing).
tests/test_containers.py builds and runs the same Dockerfile in a real engine, with `--network none`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from deps_support import RecordingProxy
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg
from test_runtime_support import start_host  # noqa: F401

from conftest import REPO

DOCKERFILE = REPO / "examples" / "docker" / "Dockerfile"
FETCHED = re.compile(r'"GET /packages/(\S+) HTTP/1\.1" 200')
PLUGINS = ("langbot-team/GoogleSearch", "lbctl-examples/dice")


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) for every instruction of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]  # type: ignore[misc]


def recipe(mapping: dict[str, str]) -> tuple[dict[str, str], list[list[str]], list[str]]:
    """The ENV variables, the `RUN lbctl …` steps and the CMD, with image paths mapped to test paths."""
    env, steps, cmd = {}, [], []
    for instruction, args in instructions():
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
        elif instruction == "RUN" and args.startswith("lbctl "):
            steps.append(shlex.split(args))
        elif instruction == "CMD":
            cmd = json.loads(args)
    return {k: _map(v, mapping) for k, v in env.items()}, [[_map(a, mapping) for a in s] for s in steps], cmd


@pytest.mark.runtime
def test_dockerfile_provisions_plugins_and_dependencies_then_runs_them_offline(tmp_path, start_host):  # noqa: F811
    mapping = {"/opt/lbpkgs": str(tmp_path / "lbpkgs"), "/etc/lbctl": str(REPO / "examples"),
               "/var/lib/lbctl": str(tmp_path / "home"), "/var/cache/lbctl": str(tmp_path / "image-cache")}
    image_env, steps, cmd = recipe(mapping)
    assert [s[1] for s in steps] == ["download", "sync", "deps", "verify"]
    assert cmd == ["lbctl", "runtime", "serve"] and image_env["LBCTL_WHEELHOUSE"] == str(tmp_path / "lbpkgs")
    with FakeMarket() as market:
        market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0", config=[],
                              extra_files={"requirements.txt": "langbot-plugin\npython-slugify>=8\n"}))
        env = {**image_env, "LBCTL_INDEX_URL": market.url}
        for step in steps:
            _run_step(step, env, market)
        wheels = sorted(p.name for p in (tmp_path / "lbpkgs" / "wheels").glob("*.whl"))
        assert [w.split("-")[0] for w in wheels] == ["python_slugify", "text_unidecode"]
        doctor = json.loads(_lbctl(["doctor", "--offline", "--json"], env).stdout)["data"]["checks"]
        assert {"name": "dependencies", "ok": True, "hint": None, "detail": "requirements of 1 plugin resolve from "
                f"wheelhouse {tmp_path / 'lbpkgs' / 'wheels'} (2 packages)"} in doctor
        listed = _lbctl(["list", "--json"], env)
        assert {p["id"]: p["source"] for p in json.loads(listed.stdout)["data"]["plugins"]} == {
            "langbot-team/GoogleSearch": "marketplace", "lbctl-examples/dice": "local"}

        proxy = RecordingProxy()
        seen = len(market.requests)
        log = tmp_path / "host.log"  # where start_host's hosts write, one after the other
        for attempt in ("first start", "restart"):
            before = len(log.read_text()) if log.exists() else 0
            host = start_host(env={**env, **proxy.env()}, cli=True)
            for plugin in PLUGINS:
                host.wait_state("running", plugin=plugin, timeout=180)
            fetched = sorted(FETCHED.findall(host.log.read_text()[before:]))
            assert fetched == (wheels if attempt == "first start" else []), attempt
            assert host.client.call_tool("lbctl-examples/dice", "roll", {"count": 2})["total"] >= 2
            assert host.stop() == 0
        assert proxy.seen == [] and len(market.requests) == seen


def _run_step(step: list[str], env: dict[str, str], market: FakeMarket) -> None:
    seen = len(market.requests)
    done = _lbctl(step[1:], env)
    assert done.returncode == 0, (step, done.stdout, done.stderr)
    if step[1] != "download":
        assert len(market.requests) == seen, f"{step[1]} made marketplace requests: {market.requests[seen:]}"


def _lbctl(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lbctl", *argv], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=600)


def _map(arg: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        arg = arg.replace(old, new)
    return arg
