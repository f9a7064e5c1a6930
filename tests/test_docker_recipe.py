"""The Docker recipe in examples/docker, run step by step outside Docker: the provisioning steps after
`lbctl download` make no network request at all."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from conftest import REPO
from fakemarket import FakeMarket
from pkgfactory import make_lbpkg

DOCKERFILE = REPO / "examples" / "docker" / "Dockerfile"


def run_steps() -> list[list[str]]:
    """The `RUN lbctl …` lines of the Dockerfile, as argument lists."""
    steps = [line[len("RUN "):] for line in DOCKERFILE.read_text().splitlines() if line.startswith("RUN lbctl ")]
    return [shlex.split(step) for step in steps]


def test_dockerfile_steps_provision_offline(tmp_path):
    steps = run_steps()
    assert [s[1] for s in steps] == ["download", "sync", "verify"]
    mapping = {"/opt/lbpkgs": str(tmp_path / "lbpkgs"), "/etc/lbctl": str(REPO / "examples")}
    with FakeMarket() as market:
        market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0"))
        env = {**os.environ, "LBCTL_HOME": str(tmp_path / "image-home"), "LBCTL_CACHE_DIR": str(tmp_path / "image-cache"),
               "LBCTL_INDEX_URL": market.url}
        seen = 0
        for step in steps:
            argv = [_map(arg, mapping) for arg in step[1:]]
            done = subprocess.run([sys.executable, "-m", "lbctl", *argv], env=env, capture_output=True, text=True)
            assert done.returncode == 0, (argv, done.stderr)
            if step[1] != "download":
                assert len(market.requests) == seen, f"{step[1]} made network requests: {market.requests[seen:]}"
            seen = len(market.requests)
        listed = subprocess.run([sys.executable, "-m", "lbctl", "list", "--json"], env=env, capture_output=True, text=True)
    plugins = {p["id"]: p for p in __import__("json").loads(listed.stdout)["data"]["plugins"]}
    assert plugins["langbot-team/GoogleSearch"]["source"] == "marketplace"
    assert plugins["lbctl-examples/dice"]["source"] == "local"


def _map(arg: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        arg = arg.replace(old, new)
    return arg
