"""Benchmark of issue 14: how long until plugins with third-party dependencies run, when the runtime installs
them from a local wheelhouse (`runtime serve --wheelhouse`) and from the public index (pypi.org), and how long a
restart takes when the dependency environments are kept.

    .venv/bin/python bench/bench_deps.py [--rounds N] [--json]

The plugins are tests/plugins/deps-pure (python-slugify, text-unidecode, humanize) and deps-compiled (mmh3).
Each round starts from a fresh environment; times run from starting `lbctl runtime serve` until the first,
then every, plugin reports running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from deps_support import build_plugin  # noqa: E402

from lbctl.runtime.client import HostClient  # noqa: E402

PLUGINS = ("lbctl-tests/deps-pure", "lbctl-tests/deps-compiled")


def lbctl(home: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "lbctl", "--home", str(home), *args, "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lbctl {' '.join(args)} failed: {done.stdout} {done.stderr}")
    return json.loads(done.stdout)


def time_to_running(home: Path, *serve_args: str, timeout: float = 600) -> tuple[float, float]:
    """Seconds from starting the host to the first and to every plugin running; the host is stopped after."""
    start = time.perf_counter()
    host = subprocess.Popen([sys.executable, "-m", "lbctl", "--home", str(home), "runtime", "serve", *serve_args],
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = None
    try:
        while time.perf_counter() - start < timeout:
            states = _states(home)
            if first is None and "running" in states.values():
                first = time.perf_counter() - start
            if all(states.get(p) == "running" for p in PLUGINS):
                return first or 0.0, time.perf_counter() - start
            if "failed" in states.values():
                raise SystemExit(f"a plugin failed: {states}")
            time.sleep(0.05)
        raise SystemExit("the plugins did not start in time")
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(60)


def _states(home: Path) -> dict:
    try:
        return {p["id"]: p["state"] for p in HostClient(home, timeout=5).status()["plugins"]}
    except Exception:  # noqa: BLE001 - the host is still starting
        return {}


def measure(rounds: int = 3) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-deps-"))
    try:
        packages = [build_plugin(name, root / "pkgs") for name in ("deps-pure", "deps-compiled")]
        seed = root / "seed"
        lbctl(seed, "install", *map(str, packages))
        started = time.perf_counter()
        lbctl(seed, "deps", "download", "-d", str(root / "wh"))
        download = time.perf_counter() - started
        figures: dict[str, list[float]] = {}
        for n in range(rounds):
            for name, args in (("wheelhouse", ("--wheelhouse", str(root / "wh"))), ("public index", ())):
                home = root / f"{name.replace(' ', '-')}-{n}"
                shutil.copytree(seed, home)
                first, every = time_to_running(home, *args)
                figures.setdefault(f"{name}: first plugin running", []).append(first)
                figures.setdefault(f"{name}: both plugins running", []).append(every)
                if name == "wheelhouse":
                    figures.setdefault("restart, environments kept: both running", []).append(
                        time_to_running(home, *args)[1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [{"name": "deps download (wheelhouse of 4 wheels)", "value": download, "unit": "s", "rounds": 1}]
    rows += [{"name": name, "value": statistics.median(values), "unit": "s", "rounds": len(values),
              "all": [round(v, 2) for v in values]} for name, values in figures.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.rounds)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        return
    for row in rows:
        detail = f"  (median of {row['rounds']}: {row['all']})" if row.get("all") else ""
        sys.stdout.write(f"{row['name']:<48} {row['value']:6.2f} {row['unit']}{detail}\n")


if __name__ == "__main__":
    os.environ.pop("LBCTL_WHEELHOUSE", None)
    main()
