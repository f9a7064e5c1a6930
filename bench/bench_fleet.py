"""Benchmark of issue 20: fleet commands over 10 to 1,000 simulated LangBot instances (bench/farm.py).

    .venv/bin/python bench/bench_fleet.py [--json] [--quick]

The farm (one asyncio loop in a thread of this process, 20 ms per request, installs ~0.9 s one at a time per
instance) and its FakeMarket run here; lbctl runs as a child process (`python -m lbctl`) with a fresh home and
cache per measure, its targets named farm-0000… in its user config file with the label fleet=bench and chosen with
LBCTL_TARGET=fleet=bench. Wall time from start to exit; peak RSS from `/usr/bin/time -f %M`.

1. `list` over 100 instances with 10 plugins each: <= 1.5 s.
2. no-op `sync` of a 10-plugin file (ids, versions, sha256, as `freeze` writes it) to 100 instances: <= 2 s.
3. the same no-op `sync` to 1,000 instances: <= 12 s, peak RSS <= 250 MB; and how time and memory grow from
   10 to 100 to 1,000 instances.
4. cold `sync` of 5 marketplace plugins to 100 empty instances: <= 1.5 x the same sync to one instance.
5. the same with 10 % of the instances down and 10 % answering after 30 s, `--timeout 5`: <= 1.5 x + 5 s, exit 7,
   and every live instance has the 5 plugins.
--quick leaves out the 1,000-instance rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(Path(__file__).resolve().parent)]

from bench_market import Child, run_child  # noqa: E402
from farm import Farm, FarmOptions  # noqa: E402
from fakemarket import FakeMarket  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

STEADY = [f"steady/plugin-{i}" for i in range(10)]  # already on every instance
COLD = [f"cold/plugin-{i}" for i in range(5)]  # installed by the cold syncs


def publish(market: FakeMarket) -> dict[str, bytes]:
    packages = {pid: make_lbpkg(*pid.split("/"), "1.0.0", config=[]) for pid in STEADY + COLD}
    for data in packages.values():
        market.add(data)
    return packages


def frozen(path: Path, packages: dict[str, bytes], ids: list[str]) -> Path:
    """A plugins file as `lbctl freeze` writes it for marketplace installs."""
    path.write_text("".join(f'[[plugin]]\nid = "{pid}"\nversion = "==1.0.0"\n'
                            f'sha256 = "{hashlib.sha256(packages[pid]).hexdigest()}"\nenabled = true\n\n'
                            for pid in ids))
    return path


class Runner:
    """lbctl as a child process, in a fresh home each time, on targets farm-0000… for the given URLs: written into
    its user config file with the label fleet=bench, and chosen with that selector."""

    def __init__(self, root: Path, api_key: str):
        self.root, self.api_key, self.runs = root, api_key, 0

    def __call__(self, urls: list[str], *args: str) -> Child:
        self.runs += 1
        work = self.root / f"run-{self.runs}"
        work.mkdir()
        names = [f"farm-{i:04d}" for i in range(len(urls))]
        (work / "config.toml").write_text("".join(f'[targets.{n}]\nurl = "{u}"\nlabels = {{ fleet = "bench" }}\n\n'
                                                  for n, u in zip(names, urls)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(LBCTL_HOME=str(work / "home"), LBCTL_CACHE_DIR=str(work / "cache"),
                   LBCTL_CONFIG=str(work / "config.toml"), LBCTL_API_KEY=self.api_key, LBCTL_TARGET="fleet=bench",
                   NO_COLOR="1", PYTHONPATH=str(REPO))
        child = run_child(list(args), env)
        shutil.rmtree(work, ignore_errors=True)
        return child


def row(name: str, value: float, unit: str, target: str = "report", ok: bool | None = None, **extra) -> dict:
    return {"name": name, "value": value, "unit": unit, "target": target, "ok": ok, **extra}


def _failed(child: Child, what: str) -> SystemExit:
    return SystemExit(f"{what}: exit {child.code}\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}")


def steady_rows(root: Path, market: FakeMarket, packages: dict[str, bytes], quick: bool) -> list[dict]:
    """list and no-op sync against instances that already have the 10 plugins."""
    sizes = (10, 100) if quick else (10, 100, 1000)
    file = frozen(root / "steady.toml", packages, STEADY)
    rows = []
    with Farm(max(sizes), market=market) as farm:
        farm.preinstall([packages[pid] for pid in STEADY])
        lbctl = Runner(root, farm.api_key)
        listing = lbctl(farm.urls[:100], "list")
        if listing.code != 0 or listing.stdout.count(" ok ") != 100:
            raise _failed(listing, "list over 100 instances")
        rows.append(row("list over 100 instances (10 plugins each)", listing.seconds, "s", "<= 1.5 s",
                        listing.seconds <= 1.5))
        for size in sizes:
            before = farm.requests()
            child = lbctl(farm.urls[:size], "sync", str(file), "--json")
            parts = child.json["data"]["targets"] if child.stdout else []
            if child.code != 0 or len(parts) != size or any(p["data"]["actions"] for p in parts):
                raise _failed(child, f"no-op sync to {size}")
            requests = farm.requests() - before
            if size == 100:
                rows.append(row("no-op sync of 10 plugins to 100 instances", child.seconds, "s", "<= 2 s",
                                child.seconds <= 2))
            if size == 1000:
                rows.append(row("no-op sync of 10 plugins to 1,000 instances", child.seconds, "s", "<= 12 s",
                                child.seconds <= 12))
                rss = child.max_rss_kb / 1024
                rows.append(row("  its peak RSS", rss, "MiB", "<= 250 MB", rss <= 250 * 1e6 / 2**20))
            rows.append(row(f"  growth: no-op sync to {size} instances: time / peak RSS / requests",
                            child.seconds, "s", extra_text=f"{child.max_rss_kb / 1024:.0f} MiB / {requests}"))
    return rows


def cold_rows(root: Path, market: FakeMarket, packages: dict[str, bytes]) -> list[dict]:
    file = frozen(root / "cold.toml", packages, COLD)
    rows = []
    with Farm(101, market=market) as farm:
        lbctl = Runner(root, farm.api_key)
        one = lbctl(farm.urls[:1], "sync", str(file))
        many = lbctl(farm.urls[1:], "sync", str(file))
        for child, what in ((one, "cold sync to one instance"), (many, "cold sync to 100")):
            if child.code != 0:
                raise _failed(child, what)
        missing = [i for i in range(101) if sorted(farm.plugin_ids(i)) != COLD]
        if missing:
            raise SystemExit(f"cold sync left instances without the plugins: {missing[:10]}")
    rows.append(row("cold sync of 5 plugins to one instance", one.seconds, "s"))
    rows.append(row("cold sync of 5 plugins to 100 instances", many.seconds, "s", "<= 1.5 x one",
                    many.seconds <= 1.5 * one.seconds, baseline=one.seconds, baseline_name="one instance",
                    ratio_target="<= 1.5x", ratio_ok=many.seconds <= 1.5 * one.seconds))
    options = FarmOptions(down=0.1, slow=0.1, slow_seconds=30.0)
    with Farm(100, market=market, options=options) as farm:
        lbctl = Runner(root, farm.api_key)
        child = lbctl(farm.urls, "--timeout", "5", "sync", str(file))
        live = [i for i in farm.up()]
        unfinished = [i.index for i in live if sorted(farm.plugin_ids(i.index)) != COLD]
    bound = 1.5 * one.seconds + 5
    ok = child.seconds <= bound and child.code == 7 and not unfinished
    rows.append(row("  same, 10 % down, 10 % answering after 30 s, --timeout 5", child.seconds, "s",
                    f"<= {bound:.1f} s, exit 7, all live done", ok,
                    extra_text=f"exit {child.code}, {len(live) - len(unfinished)} of {len(live)} live done"))
    return rows


def measure(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-fleet-") as tmp, FakeMarket() as market:
        root = Path(tmp)
        packages = publish(market)
        return steady_rows(root, market, packages, quick) + cold_rows(root, market, packages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="leave out the 1,000-instance rows")
    args = parser.parse_args()
    rows = measure(args.quick)
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        extra = f" ({r['extra_text']})" if r.get("extra_text") else ""
        verdict = "" if r["ok"] is None else ("  yes" if r["ok"] else "  NO")
        print(f"{r['name']}: {r['value']:.2f} {r['unit']}{extra}  target {r['target']}{verdict}")
    print(f"\n(cpus: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
