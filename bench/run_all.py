"""Run every benchmark in one go and print one table: figure, target, and verdict.

    .venv/bin/python bench/run_all.py [--quick]

Every row of issue 13's table is here with its target, as are issue 20's fleet rows (bench_fleet.py, against the
simulated LangBot farm of bench/farm.py), the LangBot rows (bench_langbot.py, against a real LangBot:
LBCTL_LANGBOT_VENV, else the harness makes .langbot-venv) and the dependency rows (bench_deps.py, which reach
pypi.org). --quick skips the measured sequential update (about 40 s on 2 cores), the 1,000-instance fleet rows,
the LangBot rows and the dependency rows; --loopback-only skips only the dependency rows (the rest never leaves
127.0.0.1); the default run prints everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # noqa: E402
import bench_fleet  # noqa: E402
import bench_market  # noqa: E402
import bench_runtime  # noqa: E402
import bench_sync  # noqa: E402

Row = tuple[str, str, str, str, str]


def _status(ok) -> str:
    return "" if ok is None else ("yes" if ok in (True, "PASS") else "NO")


def _dict_rows(bench: str, rows: list[dict]) -> list[Row]:
    """Rows of bench_sync, bench_runtime, bench_langbot and bench_deps: a value with its unit, maybe a baseline."""
    out: list[Row] = []
    for row in rows:
        target = row.get("target") or ""
        extra = f" ({row['extra_text']})" if row.get("extra_text") else ""
        out.append((bench, row["name"], f"{row['value']:.2f} {row['unit']}{extra}", "" if target == "report" else target,
                    "" if target in ("", "report") else _status(row.get("ok"))))
        if row.get("baseline"):
            out.append((bench, f"  vs {row['baseline_name']} ({row['baseline']:.2f} {row['unit']})",
                        f"{row['value'] / row['baseline']:.2f}x", row.get("ratio_target", ""),
                        _status(row.get("ratio_ok"))))
    return out


def rows(quick: bool, loopback_only: bool = False) -> list[Row]:
    """(benchmark, measure, value, target, ok) for every figure."""
    out = [("core", name, wall, target, _status(ok)) for name, wall, _cpu, target, ok in bench_core.measure()]
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        market = bench_market.bench_update(Path(tmp), 200, 0.05, not quick)
        market += bench_market.bench_download(Path(tmp), 50)
        market += bench_market.bench_install_requirements(Path(tmp), 100, 0.05)
    out += [("market", name.strip(), value, target, _status(ok or None)) for name, value, target, ok in market]
    out += _dict_rows("sync", bench_sync.measure(500, 0.5))
    out += _dict_rows("fleet", bench_fleet.measure(quick))
    out += _dict_rows("runtime", bench_runtime.measure())
    if not quick:
        import bench_langbot

        out += _dict_rows("langbot", bench_langbot.measure(10))
    if not (quick or loopback_only):
        import bench_deps

        out += _dict_rows("deps", bench_deps.measure(1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the sequential update, LangBot and deps rows")
    parser.add_argument("--loopback-only", action="store_true", help="skip the rows that reach pypi.org (deps)")
    args = parser.parse_args()
    table = rows(args.quick, args.loopback_only)
    header = ("bench", "measure", "value", "target", "ok")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    missed = [r[1].strip() for r in table if r[4] == "NO"]
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; every figure above is from this one run; "
          f"{sum(r[4] == 'yes' for r in table)} targets met, {len(missed)} missed" + (f": {'; '.join(missed)}" if missed else ""))
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
