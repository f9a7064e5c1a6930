"""Core CLI timings on this machine: start-up, `list` and `show` with 500 plugins, installing 100 local packages.

Run with the project's interpreter: `.venv/bin/python bench/bench_core.py`. Prints one table
(name, wall time, the child's CPU time, target, ok); exit status 1 when a target is missed.
Targets are judged on wall time. The CPU column (user + system of the child process) tells a slow
machine from slow code when other processes compete for the CPUs. Children run without
PYTHONDONTWRITEBYTECODE so that, as after a pip install, lbctl's own modules are byte-compiled once.
`list` and `show` run with stdout on a pseudo-terminal (120 columns), where lbctl draws tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pkgfactory import make_lbpkg  # noqa: E402

PYTHON = sys.executable
SCRIPT = Path(PYTHON).parent / "lbctl"
LBCTL = [str(SCRIPT)] if SCRIPT.exists() else [PYTHON, "-m", "lbctl"]
RUNS = 10


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `cmd`, which must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {proc.stderr.read().decode()}")
    proc.stderr.close()
    return elapsed, usage.ru_utime + usage.ru_stime


def timed_on_terminal(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """`timed`, with stdout and stderr on a pseudo-terminal of 120x40 (what a person sees: tables, not lines)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    output = bytearray()
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(master, 1 << 16):
            output += chunk
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    os.close(master)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed on a terminal: {output.decode(errors='replace')[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def median(cmd: list[str], env: dict[str, str], runs: int = RUNS, run=timed) -> tuple[float, float]:
    run(cmd, env)  # warm the page cache and the bytecode cache
    samples = [run(cmd, env) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def write_packages(directory: Path, count: int, author: str) -> list[str]:
    directory.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = directory / f"{author}-p{i:03d}-1.0.0.lbpkg"
        path.write_bytes(make_lbpkg(author, f"p{i:03d}", "1.0.0"))
        paths.append(str(path))
    return paths


def environment(root: Path, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(LBCTL_HOME=str(root / home), LBCTL_CACHE_DIR=str(root / "cache"),
               LBCTL_CONFIG=str(root / "config.toml"), LBCTL_OFFLINE="1", NO_COLOR="1")
    return env


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def measure() -> list[tuple[str, str, str, str, bool | None]]:
    """Rows of (name, wall, cpu, target, ok)."""
    rows: list[tuple[str, str, str, str, bool | None]] = []
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        root = Path(tmp)
        empty = environment(root, "empty-home")

        bare, bare_cpu = median([PYTHON, "-c", "pass"], empty)
        version, version_cpu = median([*LBCTL, "--version"], empty)
        version_m, version_m_cpu = median([PYTHON, "-m", "lbctl", "--version"], empty)
        list_empty, list_empty_cpu = median([*LBCTL, "list"], empty)
        rows += [
            ("python -c pass", ms(bare), ms(bare_cpu), "", None),
            (f"{Path(LBCTL[0]).name} --version", ms(version), ms(version_cpu), "", None),
            ("python -m lbctl --version", ms(version_m), ms(version_m_cpu), "", None),
            ("--version / python -c pass", f"{version / bare:.2f}x", f"{version_cpu / bare_cpu:.2f}x", "<= 3x",
             version / bare <= 3),
            ("lbctl list (empty home)", ms(list_empty), ms(list_empty_cpu), "", None),
        ]

        many = environment(root, "home-500")
        packages = write_packages(root / "pkgs-500", 500, "bench")
        install_500, install_500_cpu = timed([*LBCTL, "install", "-q", *packages], many)
        list_500, list_500_cpu = median([*LBCTL, "list"], many, runs=15, run=timed_on_terminal)
        list_500_json, list_500_json_cpu = median([*LBCTL, "list", "--json"], many, runs=5)
        show, show_cpu = median([*LBCTL, "show", "bench/p250"], many, runs=15, run=timed_on_terminal)
        rows += [
            ("install 500 (one command)", f"{install_500:.2f} s", f"{install_500_cpu:.2f} s", "", None),
            ("lbctl list (500, table on a terminal)", ms(list_500), ms(list_500_cpu), "<= 120 ms", list_500 <= 0.12),
            ("  list (500) / python -c pass", f"{list_500 / bare:.1f}x", f"{list_500_cpu / bare_cpu:.1f}x", "<= 4x",
             list_500 / bare <= 4),
            ("lbctl list --json (500)", ms(list_500_json), ms(list_500_json_cpu), "< 500 ms", list_500_json < 0.5),
            ("lbctl show ID (500 installed, terminal)", ms(show), ms(show_cpu), "<= 100 ms", show <= 0.1),
        ]

        hundred = write_packages(root / "pkgs-100", 100, "hundred")
        installs = [timed([*LBCTL, "install", "-q", *hundred], environment(root, f"home-100-{i}")) for i in range(3)]
        install_100, install_100_cpu = (statistics.median(s[i] for s in installs) for i in (0, 1))
        rows.append(("install 100 local packages", f"{install_100:.2f} s", f"{install_100_cpu:.2f} s", "< 5 s",
                     install_100 < 5))
    return rows


def main() -> int:
    load_before = os.getloadavg()[0]
    rows = measure()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; lbctl = {' '.join(LBCTL)}")
    print(f"medians of {RUNS} runs (15 for list 500 and show on a terminal, 5 for list --json, 3 for install 100)")
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'wall':>9}  {'cpu':>9}  {'target':<8}  ok")
    for name, value, cpu, target, ok in rows:
        print(f"{name:<{width}}  {value:>9}  {cpu:>9}  {target:<8}  {'' if ok is None else ('yes' if ok else 'NO')}")
    return 0 if all(row[-1] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
