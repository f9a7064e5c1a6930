"""Benchmark of issues 6 and 13: install-to-running latency of the tests' hello plugin under a live host, with where
the time goes, and the memory of the host (the lbctl process) and of the runtime it started.

    .venv/bin/python bench/bench_runtime.py [--json]

The host is started and the install begins once its runtime is connected (target <= 1.5 s). The breakdown comes
from state.json's commit time and the plugin's own log lines (the runtime stamps them). Issue 12's bench began as
soon as the host answered, while the runtime was still starting; that figure is reported too. Baseline: installing
the same package with no host up (the part of the latency that is lbctl itself).
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
from datetime import datetime
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


def wait_up(env: dict, *, runtime: bool, timeout: float = 60) -> None:
    """Until the host answers (and with `runtime`, until the runtime it started is connected too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-m", "lbctl", "runtime", "status", "--json"], env=env,
                              capture_output=True, text=True)
        data = json.loads(done.stdout)["data"] if done.returncode == 0 else None
        if data and data["host"] and (data["runtime_version"] or not runtime):
            return
        time.sleep(0.05)
    raise SystemExit("the host did not come up")


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def breakdown(env: dict, started: float, ended: float) -> dict[str, float]:
    """Where the install's time went, from state.json's commit and the plugin's own log lines (wall clock)."""
    committed = (Path(env["LBCTL_HOME"]) / "state.json").stat().st_mtime
    _, doc = lbctl(env, "logs", PLUGIN, "-n", "1000")
    stamps = [(_epoch(line["ts"]), line["text"]) for line in doc["data"]["lines"] if line.get("ts")]
    first = stamps[0][0]
    ready = next(t for t, text in stamps if text.startswith("Plugin ") and text.endswith(" initialized"))
    return {"lbctl: start, resolve, commit": committed - started,
            "host + runtime: apply, unpack, spawn the plugin": first - committed,
            "plugin: start to initialized": ready - first,
            "host notices, lbctl reports and exits": ended - ready}


def install_live(env: dict) -> tuple[float, dict, dict[str, float]]:
    started = time.time()
    latency, doc = lbctl(env, "install", str(FIXTURE))
    if doc["data"]["live"][0]["state"] != "running":
        raise SystemExit(f"the plugin did not start: {doc}")
    return latency, doc, breakdown(env, started, started + latency)


def serving(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lbctl", "runtime", "serve"], env=env,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(host: subprocess.Popen) -> None:
    host.send_signal(signal.SIGTERM)
    host.wait(30)


def measure() -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-runtime-"))
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    baseline, _ = lbctl({**clean, "LBCTL_HOME": str(root / "cold")}, "install", str(FIXTURE))
    early_env = {**clean, "LBCTL_HOME": str(root / "early")}
    host = serving(early_env)
    try:
        wait_up(early_env, runtime=False)
        early, _, _ = install_live(early_env)  # the runtime may still be starting: what issue 12's bench timed
    finally:
        stop(host)
    env = {**clean, "LBCTL_HOME": str(root / "home")}
    host = serving(env)
    try:
        wait_up(env, runtime=True)
        idle = rss_mb(host.pid)
        latency, _, parts = install_live(env)
        host_mb = rss_mb(host.pid)
        runtime_mb = sum(rss_mb(pid) for pid in children(host.pid))
    finally:
        stop(host)
    rows = [{"name": "install to running (live host, runtime up)", "value": latency, "unit": "s",
             "target": "<= 1.5 s", "ok": latency <= 1.5, "baseline": baseline, "baseline_name": "install, no host"}]
    rows += [{"name": f"  {name}", "value": value, "unit": "s", "target": "report"} for name, value in parts.items()]
    return rows + [
        {"name": "install to running, right after `runtime serve` (runtime starting)", "value": early, "unit": "s",
         "target": "report"},
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
        base = f"; {row['baseline_name']} {row['baseline']:.2f}" if row.get("baseline") is not None else ""
        print(f"{row['name']}: {row['value']:.2f} {row['unit']}{base}")


if __name__ == "__main__":
    main()
