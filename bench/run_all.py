"""Run every benchmark in one go and print one table: figure, target, and ratio to its baseline.

    .venv/bin/python bench/run_all.py [--quick]

--quick skips the measured sequential update (about 40 s on 2 cores); the computed sequential figure stays.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # noqa: E402
import bench_market  # noqa: E402
import bench_runtime  # noqa: E402
import bench_sync  # noqa: E402


def _status(ok) -> str:
    return "" if ok is None else ("yes" if ok in (True, "PASS") else "NO")


def rows(quick: bool) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, measure, value, target, ok) for every figure."""
    out = [("core", name, wall, target, _status(ok)) for name, wall, _cpu, target, ok in bench_core.measure()]
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        market = bench_market.bench_update(Path(tmp), 200, 0.05, not quick)
        market += bench_market.bench_download(Path(tmp), 50)
    out += [("market", name.strip(), value, target, _status(ok or None)) for name, value, target, ok in market]
    for bench, module in (("sync", bench_sync), ("runtime", bench_runtime)):
        for row in module.measure() if bench == "runtime" else module.measure(100):
            value = f"{row['value']:.2f} {row['unit']}"
            out.append((bench, row["name"], value, row["target"], _status(row["ok"]) if row["target"] != "report" else ""))
            if row.get("baseline"):
                out.append((bench, f"  vs {row['baseline_name']} ({row['baseline']:.2f} {row['unit']})",
                            f"{row['value'] / row['baseline']:.2f}x", "", ""))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    table = rows(parser.parse_args().quick)
    header = ("bench", "measure", "value", "target", "ok")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; every figure above is from this one run")
    return 0 if all(r[4] != "NO" for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
