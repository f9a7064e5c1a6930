"""Benchmarks of issue 3: `lbctl update --all` over many plugins, and one large download.

    .venv/bin/python bench/bench_market.py [--plugins 200] [--latency 0.05] [--megabytes 50] [--requirements 100]
                                           [--no-sequential]

Everything runs against FakeMarket (tests/fakemarket.py) on 127.0.0.1, and lbctl runs as a real child
process (`python -m lbctl`) in a throw-away home and cache, so the figures include interpreter start-up.

1. update --all: N marketplace installs at 1.0.0, 1.1.0 published for each, then `lbctl update --all` with
   `latency` seconds added to every request. Target <= 1 s for 200 plugins at 50 ms (>= 20x the sequential
   figure; 400 requests with 32 in flight take 0.63 s of latency alone).
   The sequential figure: lbctl has no user-facing knob for its thread pool, so it is given two ways:
   computed (requests the update made x latency, what one worker would at least spend waiting), and
   measured (the same update from the same starting home, in a child process where
   `lbctl.marketplace.fetch_many` is wrapped to force max_workers=1; skip with --no-sequential).
2. download: one package with M MB of random stored entries (several, each under the 16 MiB entry limit),
   fetched with `lbctl download ID -d DIR`. Targets: >= 150 MB/s, peak memory growth <= 30 MB. The peak is
   the child's maximum resident set size (`/usr/bin/time -f %M`), compared with `lbctl --version` (as the issue
   asks) and with the same command downloading a tiny package (imports and the CLI itself included, so
   the difference is what the payload costs).
3. install -r: a plugins file of 100 marketplace plugins (no version given) into an empty home with an empty
   cache, `latency` seconds per request. Target <= 1.5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fakemarket import FakeMarket  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

MB = 1_000_000
TIME = Path("/usr/bin/time")
SEQUENTIAL_WRAPPER = """
import sys
import lbctl.marketplace as marketplace
_fetch_many = marketplace.fetch_many
marketplace.fetch_many = lambda items, fn, **kw: _fetch_many(items, fn, max_workers=1)
from lbctl.cli import main
main(sys.argv[1:])
"""


@dataclass
class Child:
    code: int
    seconds: float
    max_rss_kb: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_child(argv: list[str], env: dict[str, str], *, wrapper: str | None = None) -> Child:
    """Run lbctl in a child process; wall time and the child's own peak RSS.

    The peak comes from `/usr/bin/time -f %M`: rusage of a child forked straight from this (large) process
    would count the parent's pages the child held between fork and exec. Without /usr/bin/time, os.wait4.
    """
    cmd = [sys.executable, "-c", wrapper, *argv] if wrapper else [sys.executable, "-m", "lbctl", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        if TIME.exists():
            cmd = [str(TIME), "-f", "%M", "-o", rss.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        max_rss = int(rss.read().split()[-1]) if TIME.exists() else usage.ru_maxrss
        out.seek(0)
        err.seek(0)
        return Child(code, seconds, max_rss, out.read().decode(), err.read().decode())


def child_env(root: Path, market: FakeMarket, home: str = "home", cache: str = "cache") -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE would make every child compile lbctl's modules again (~0.1 s of each start)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(LBCTL_HOME=str(root / home), LBCTL_CACHE_DIR=str(root / cache), LBCTL_CONFIG=str(root / "c.toml"),
               LBCTL_INDEX_URL=market.url, NO_COLOR="1", PYTHONPATH=str(REPO))
    return env


def check(child: Child, what: str) -> Child:
    if child.code != 0:
        raise SystemExit(f"{what} failed with exit {child.code}:\n{child.stdout}\n{child.stderr}")
    return child


def bench_update(root: Path, plugins: int, latency: float, sequential: bool) -> list[tuple[str, str, str, str]]:
    ids = [f"bench/plugin-{i:03d}" for i in range(plugins)]
    with FakeMarket() as market:
        for pid in ids:
            market.add(make_lbpkg(*pid.split("/"), "1.0.0", config=[]))
        check(run_child(["install", *ids, "--json"], child_env(root, market, cache="cache-install")), "install")
        for pid in ids:
            market.add(make_lbpkg(*pid.split("/"), "1.1.0", config=[]))
        shutil.copytree(root / "home", root / "home-seq", symlinks=True)

        startup = check(run_child(["list", "--json"], child_env(root, market)), "list")
        market.latency = latency
        first = len(market.requests)
        update = check(run_child(["update", "--all", "--json"], child_env(root, market, cache="cache-upd")), "update")
        requests = len(market.requests) - first
        summary = update.json["data"]["summary"]
        if summary != f"updated {plugins} of {plugins}":
            raise SystemExit(f"unexpected summary: {summary}")

        speedup = requests * latency / update.seconds
        rows = [
            (f"update --all, {plugins} plugins, {latency * 1000:.0f} ms/request", f"{update.seconds:.2f} s",
             "<= 1.0 s", "PASS" if update.seconds <= 1.0 else "FAIL"),
            ("  requests made by the update", str(requests), "", ""),
            ("  CLI start-up (lbctl list, no network)", f"{startup.seconds:.2f} s", "", ""),
            ("  sequential, computed (requests x latency)", f"{requests * latency:.2f} s", "", ""),
            ("  latency floor: requests / 32 in flight x latency", f"{-(-requests // 32) * latency:.2f} s", "", ""),
        ]
        if sequential:
            seq = check(run_child(["update", "--all", "--json"], child_env(root, market, "home-seq", "cache-seq"),
                                  wrapper=SEQUENTIAL_WRAPPER), "sequential update")
            rows.append(("  sequential, measured (fetch_many max_workers=1)", f"{seq.seconds:.2f} s", "", ""))
            rows.append(("  speed-up vs measured sequential", f"{seq.seconds / update.seconds:.1f} x", "", ""))
        rows.append(("  speed-up vs computed sequential", f"{speedup:.1f} x", ">= 20 x",
                     "PASS" if speedup >= 20 else "FAIL"))
        return rows


def bench_install_requirements(root: Path, plugins: int, latency: float) -> list[tuple[str, str, str, str]]:
    """`lbctl install -r plugins.toml` of N marketplace plugins into an empty home with an empty cache."""
    ids = [f"bench-req/plugin-{i:03d}" for i in range(plugins)]
    listing = root / "requirements.toml"
    listing.write_text("".join(f'[[plugin]]\nid = "{pid}"\n\n' for pid in ids))
    with FakeMarket() as market:
        for pid in ids:
            market.add(make_lbpkg(*pid.split("/"), "1.0.0", config=[]))
        market.latency = latency
        env = child_env(root, market, home="home-req", cache="cache-req")
        child = check(run_child(["install", "-r", str(listing), "--json"], env), "install -r")
        requests = len(market.requests)
    installed = sum(a["status"] == "done" for a in child.json["data"]["actions"])
    if installed != plugins:
        raise SystemExit(f"install -r installed {installed} of {plugins}")
    return [
        (f"install -r, {plugins} marketplace plugins, cold cache, {latency * 1000:.0f} ms/request",
         f"{child.seconds:.2f} s", "<= 1.5 s", "PASS" if child.seconds <= 1.5 else "FAIL"),
        ("  requests made / latency floor at 32 in flight", f"{requests} / {-(-requests // 32) * latency:.2f} s", "",
         ""),
    ]


def bench_download(root: Path, megabytes: int) -> list[tuple[str, str, str, str]]:
    size = megabytes * MB
    parts = -(-size // (12 * MB))  # stored entries of at most 12 MB: under the 16 MiB per-entry limit
    blobs = {f"data/blob-{i}.bin": os.urandom(size // parts) for i in range(parts)}
    big = make_lbpkg("bench", "big", "1.0.0", config=[], extra_files=blobs)
    del blobs
    small = make_lbpkg("bench", "small", "1.0.0", config=[])
    with FakeMarket() as market:
        market.add(big)
        market.add(small)
        env = child_env(root, market, home="home-dl", cache="cache-dl")
        version = check(run_child(["--version"], env), "--version")
        tiny = check(run_child(["download", "bench/small", "-d", str(root / "out-small"), "--json"], env),
                     "small download")
        child = check(run_child(["download", "bench/big", "-d", str(root / "out"), "--json"], env), "download")
        [entry] = child.json["data"]["files"]
        saved = Path(entry["path"])
        if hashlib.sha256(saved.read_bytes()).hexdigest() != hashlib.sha256(big).hexdigest():
            raise SystemExit("the downloaded file differs from the published package")
    mb = len(big) / MB
    rate = mb / child.seconds
    net = mb / max(child.seconds - tiny.seconds, 1e-9)
    growth_version = (child.max_rss_kb - version.max_rss_kb) / 1024
    growth_tiny = (child.max_rss_kb - tiny.max_rss_kb) / 1024
    return [
        (f"download of a {mb:.1f} MB package ({parts} stored entries)", f"{child.seconds:.2f} s", "", ""),
        ("  throughput, whole command", f"{rate:.0f} MB/s", ">= 150 MB/s", "PASS" if rate >= 150 else "FAIL"),
        ("  throughput, minus a tiny download's time", f"{net:.0f} MB/s", "", ""),
        ("  peak RSS: --version / tiny download / big download",
         f"{version.max_rss_kb / 1024:.0f} / {tiny.max_rss_kb / 1024:.0f} / {child.max_rss_kb / 1024:.0f} MiB",
         "", ""),
        ("  peak memory growth vs lbctl --version", f"{growth_version:.0f} MiB", "<= 30 MB",
         "PASS" if growth_version <= 30 else "FAIL"),
        ("  peak memory growth vs the tiny download", f"{growth_tiny:.0f} MiB", "<= 30 MB",
         "PASS" if growth_tiny <= 30 else "FAIL"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--requirements", type=int, default=100, help="plugins in the install -r benchmark")
    parser.add_argument("--no-sequential", action="store_true", help="skip the measured sequential update")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        root = Path(tmp)
        rows = bench_update(root, args.plugins, args.latency, not args.no_sequential)
        rows += bench_download(root, args.megabytes)
        rows += bench_install_requirements(root, args.requirements, args.latency)
    widths = [max(len(row[i]) for row in rows + [("measure", "value", "target", "")]) for i in range(4)]
    header = ("measure", "value", "target", "")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n(cpus: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
