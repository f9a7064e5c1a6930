"""Benchmark of issue 6: install-to-running latency of the tests' hello plugin under a live host, and the memory of
the host (the lbctl process) and of the runtime it started.

    .venv/bin/python bench/bench_runtime.py [--json]

Baseline: installing the same package with no host up (the part of the latency that is lbctl itself).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "plugins" / "lbctl-tests-hello-0.1.0.lbpkg"  # the tests' own plugin
PLUGIN = "lbctl-tests/hello"


def lbctl(env: dict, *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lbctl", *args, "--json"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lbctl {' '.join(args)} failed: {done.stdout} {done.stderr}")
    return time.perf_counter() - start, json.loads(done.stdout)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_up(env: dict, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-m", "lbctl", "runtime", "status", "--json"], env=env,
                              capture_output=True, text=True)
        if done.returncode == 0 and json.loads(done.stdout)["data"]["host"]:
            return
        time.sleep(0.3)
    raise SystemExit("the host did not come up")


def measure() -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-runtime-"))
    cold = {**os.environ, "LBCTL_HOME": str(root / "cold")}
    baseline, _ = lbctl(cold, "install", str(FIXTURE))
    env = {**os.environ, "LBCTL_HOME": str(root / "home")}
    host = subprocess.Popen([sys.executable, "-m", "lbctl", "runtime", "serve"], env=env,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_up(env)
        idle = rss_mb(host.pid)
        latency, doc = lbctl(env, "install", str(FIXTURE))
        if doc["data"]["live"][0]["state"] != "running":
            raise SystemExit(f"the plugin did not start: {doc}")
        host_mb = rss_mb(host.pid)
        runtime_mb = sum(rss_mb(pid) for pid in children(host.pid))
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
    return [
        {"name": "install to running (live host)", "value": latency, "unit": "s", "target": "report",
         "ok": True, "baseline": baseline, "baseline_name": "install, no host"},
        {"name": "host memory (lbctl, 1 plugin)", "value": host_mb, "unit": "MB", "target": "report", "ok": True,
         "baseline": idle, "baseline_name": "host idle"},
        {"name": "runtime child memory", "value": runtime_mb, "unit": "MB", "target": "report", "ok": True,
         "baseline": None, "baseline_name": None},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    rows = measure()
    if parser.parse_args().json:
        print(json.dumps(rows))
        return
    for row in rows:
        base = f"; {row['baseline_name']} {row['baseline']:.2f}" if row["baseline"] is not None else ""
        print(f"{row['name']}: {row['value']:.2f} {row['unit']}{base}")


if __name__ == "__main__":
    main()
