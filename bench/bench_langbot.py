"""Benchmark of the LangBot target (issue 10) against a real LangBot 4.11.2 (tests/langbot_harness.py).

    .venv/bin/python bench/bench_langbot.py [--plugins 10] [--json]

- cold `lbctl --target URL sync` of N marketplace plugins, against installing N others one by one through
  LangBot's API (POST install/marketplace, then poll its task, one after the other): target ≥ 2× faster;
- the no-op `sync` right after: target < 1 s;
- `lbctl --target URL list` against `lbctl list` of a local environment with the same plugins.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from bench_sync import lbctl  # noqa: E402  (one timed run of the CLI)
from fakemarket import FakeMarket  # noqa: E402
from langbot_harness import LangBot  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402


def one_by_one(server: LangBot, ids: list[str]) -> float:
    """What a script without lbctl does: one marketplace install at a time, each waited for."""
    start = time.perf_counter()
    for plugin_id in ids:
        author, name = plugin_id.split("/")
        body = {"plugin_author": author, "plugin_name": name, "plugin_version": "1.0.0"}
        task = server.api("/plugins/install/marketplace", method="POST", body=body)["data"]["task_id"]
        while server.api(f"/system/tasks/{task}")["data"]["status"] == "running":
            time.sleep(0.1)
    return time.perf_counter() - start


def plugins_file(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f'[[plugin]]\nid = "{pid}"\nversion = "==1.0.0"\n\n' for pid in ids))
    return path


def measure(plugins: int = 10) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-langbot-"))
    with FakeMarket() as market:
        baseline_ids = [f"bench-api/plugin-{i}" for i in range(plugins)]
        synced_ids = [f"bench-lbctl/plugin-{i}" for i in range(plugins)]
        for pid in baseline_ids + synced_ids:
            market.add(make_lbpkg(*pid.split("/"), "1.0.0"))
        server = LangBot.start(root / "langbot", market_url=market.url)
        try:
            env = {**os.environ, "LBCTL_HOME": str(root / "home"), "LBCTL_CACHE_DIR": str(root / "cache"),
                   "LBCTL_CONFIG": str(root / "config.toml"), "LBCTL_API_KEY": server.api_key}
            api = one_by_one(server, baseline_ids)
            server.remove_all_plugins()
            file = plugins_file(root / "plugins.toml", synced_ids)
            cold = lbctl(env, "--target", server.url, "sync", str(file))
            noop = statistics.median(lbctl(env, "--target", server.url, "sync", str(file)) for _ in range(3))
            remote = statistics.median(lbctl(env, "--target", server.url, "list") for _ in range(5))
            lbctl(env, "--index-url", market.url, "sync", str(file))
            local = statistics.median(lbctl(env, "list") for _ in range(5))
        finally:
            server.stop()
    return [
        {"name": f"LangBot: cold sync of {plugins} marketplace plugins", "value": cold, "unit": "s",
         "target": "report", "ok": None},
        {"name": f"LangBot: {plugins} installs one by one through the API", "value": api, "unit": "s",
         "target": "report", "ok": None},
        {"name": "LangBot: cold sync speed-up vs one by one", "value": api / cold, "unit": "x",
         "target": ">= 2x", "ok": cold * 2 <= api},
        {"name": f"LangBot: no-op sync of {plugins} plugins", "value": noop, "unit": "s", "target": "< 1 s",
         "ok": noop < 1.0},
        {"name": f"LangBot: list --target, {plugins} plugins", "value": remote, "unit": "s", "target": "report",
         "ok": None, "baseline": local, "baseline_name": "lbctl list locally"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.plugins)
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        base = f" (baseline {row['baseline_name']}: {row['baseline']:.2f} s)" if row.get("baseline") else ""
        print(f"{row['name']}: {row['value']:.2f} {row['unit']}{base}  target {row['target']}")


if __name__ == "__main__":
    main()
