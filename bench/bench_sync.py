"""Benchmark of issues 5 and 13: a no-op `lbctl sync` of a 500-plugin file against a matching environment.

    .venv/bin/python bench/bench_sync.py [--plugins 500] [--json]

Target <= 0.5 s (issue 5 asked < 1 s for 100). Baseline: `lbctl list` on the same environment (the cost of
starting lbctl and reading it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from pkgfactory import make_lbpkg  # noqa: E402


def lbctl(env: dict, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lbctl", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lbctl {' '.join(args)} failed: {done.stderr}")
    return time.perf_counter() - start


def measure(plugins: int = 500, target: float = 0.5) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-sync-"))
    env = {**os.environ, "LBCTL_HOME": str(root / "home"), "LBCTL_CACHE_DIR": str(root / "cache"),
           "LBCTL_OFFLINE": "1"}
    paths = []
    for i in range(plugins):
        path = root / f"p{i}.lbpkg"
        path.write_bytes(make_lbpkg("bench", f"plugin-{i}", "1.0.0"))
        paths.append(str(path))
    lbctl(env, "install", *paths)
    frozen = subprocess.run([sys.executable, "-m", "lbctl", "freeze", "--with-config"], env=env,
                            capture_output=True, text=True, check=True).stdout
    (root / "plugins.toml").write_text(frozen)
    sync = statistics.median(lbctl(env, "sync", str(root / "plugins.toml")) for _ in range(5))
    listing = statistics.median(lbctl(env, "list") for _ in range(5))
    return [{"name": f"sync no-op, {plugins} plugins", "value": sync, "unit": "s", "target": f"<= {target:g} s",
             "ok": sync <= target, "baseline": listing, "baseline_name": "lbctl list"}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.plugins)
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['name']}: {row['value']:.3f} s (target {row['target']}; {row['baseline_name']} "
                  f"{row['baseline']:.3f} s, ratio {row['value'] / row['baseline']:.2f})")


if __name__ == "__main__":
    main()
