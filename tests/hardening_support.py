"""Running the real CLI as a child process for the hardening tests (issue 11): its peak memory, its wall time,
signals sent to it, and file systems it sees full or read-only (a private mount namespace, so nothing of the
machine's mounts changes)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


# `python -m lbctl` that writes its peak RSS when it exits. Linux charges a child with the pages of the process
# it was forked from (this test process, easily 150 MB) in wait4's ru_maxrss, but VmHWM is its own.
BOOT = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["LBCTL_TEST_PEAK"], "w") as out:
        out.write(kib)
atexit.register(_peak)
sys.argv[0] = "lbctl"
runpy.run_module("lbctl", run_name="__main__", alter_sys=True)
"""


@dataclass
class Proc:
    exit_code: int
    stdout: str
    stderr: str
    max_rss_mb: float
    seconds: float

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return f"exit={self.exit_code} rss={self.max_rss_mb:.0f}MB t={self.seconds:.1f}s\n{self.stdout}\n{self.stderr}"


def spawn(args: list[str], *, env: dict | None = None, stdin: bytes | None = None, umask: int | None = None,
          prefix: list[str] = ()) -> subprocess.Popen:
    def child_setup() -> None:
        if umask is not None:
            os.umask(umask)

    peak = tempfile.NamedTemporaryFile(prefix="lbctl-peak-", delete=False)
    peak.close()
    proc = subprocess.Popen([*prefix, sys.executable, "-c", BOOT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            env={**os.environ, **(env or {}), "LBCTL_TEST_PEAK": peak.name},
                            preexec_fn=child_setup if umask is not None else None)
    proc.peak_file = peak.name  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, *, timeout: float = 60, stdin: bytes | None = None, started: float | None = None,
           what: str = "lbctl") -> Proc:
    """Wait for `proc` (killed after `timeout`) and collect its output, exit code and peak RSS."""
    started = time.monotonic() if started is None else started
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read())) for s, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    try:
        proc.wait(max(timeout - (time.monotonic() - started), 0.1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for reader in readers:
        reader.join()
    seconds = time.monotonic() - started
    peak = Path(proc.peak_file).read_text() if hasattr(proc, "peak_file") else ""
    Path(getattr(proc, "peak_file", "/nonexistent")).unlink(missing_ok=True)
    result = Proc(proc.returncode, out[0].decode(errors="replace"), err[0].decode(errors="replace"),
                  int(peak) / 1024 if peak else float("nan"), seconds)
    assert seconds < timeout, f"{what} still ran after {timeout} s:\n{result.output}"
    return result


def run_cli(*args: str, timeout: float = 60, env: dict | None = None, stdin: bytes | None = None,
            umask: int | None = None, mounts: list[str] = ()) -> Proc:
    """The real CLI in a child process, optionally after `mounts` (shell commands) in a private mount namespace."""
    prefix: list[str] = []
    if mounts:
        script = " && ".join([*mounts, 'exec "$@"'])
        prefix = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            prefix.append("--map-root-user")
        prefix += ["sh", "-c", script, "sh"]
    started = time.monotonic()
    return finish(spawn(list(args), env=env, stdin=stdin, umask=umask, prefix=prefix), timeout=timeout,
                  stdin=stdin, started=started, what=f"lbctl {' '.join(args)[:200]}")


def tmpfs(path: Path, size: str) -> str:
    """A mount command: an empty tmpfs of `size` at `path` (a disk that fills up)."""
    return f"mount -t tmpfs -o size={size},mode=0700 tmpfs {shlex.quote(str(path))}"


def read_only(path: Path) -> list[str]:
    """Mount commands: `path`, with what it holds, read-only."""
    quoted = shlex.quote(str(path))
    return [f"mount --bind {quoted} {quoted}", f"mount -o remount,bind,ro {quoted}"]


def one_line_error(run: Proc | object, code: int) -> None:
    """Exit `code`, nothing on stdout, one `error:` line (and maybe a hint) on stderr, no traceback."""
    assert run.exit_code == code, run.output
    lines = run.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), run.output
    assert all(line.startswith(("error: ", "hint: ")) for line in lines) and len(lines) <= 2, run.output
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.output


def handler_installed(pid: int) -> bool:
    """Whether lbctl's handler is in place: Python itself never catches SIGTERM, lbctl does."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def environment_snapshot(home: Path) -> str:
    """What a crash must leave either as before a command or as after it: the records, the config, a purge still
    to be completed, and the plugins' stored rows (read straight from the files, as a fresh process would)."""
    import sqlite3

    try:
        state = json.loads((home / "state.json").read_text())
    except FileNotFoundError:
        state = {"plugins": {}, "config": {}}
    plugins = {pid: (r["version"], r["sha256"], r.get("enabled", True)) for pid, r in state["plugins"].items()}
    stored: list = []
    if (home / "storage.db").exists():
        db = sqlite3.connect(home / "storage.db")
        try:
            stored = sorted(db.execute("SELECT owner_type, owner, key, value FROM storage").fetchall())
        finally:
            db.close()
    return json.dumps([plugins, state["config"], state.get("purging", []), [list(map(str, row)) for row in stored]],
                      sort_keys=True)


def strace_usable() -> str | None:
    """None when strace can trace a child here, else why not (it is not installed, or ptrace is not allowed)."""
    import shutil

    if shutil.which("strace") is None:
        return "strace is not installed (.ci/run installs it)"
    probe = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"strace cannot trace here: {probe.stderr.strip()[:200]}"


def syscall_counts(args: list[str], syscalls: tuple[str, ...], *, env: dict | None = None) -> dict[str, int]:
    """How often `lbctl ARGS` (run as `run_injected` runs it) makes each of `syscalls`, from `strace -c`."""
    with tempfile.NamedTemporaryFile("r", prefix="lbctl-strace-") as out:
        prefix = ["strace", "-f", "-c", "-U", "name,calls", "-e", f"trace={','.join(syscalls)}", "-o", out.name]
        done = finish(spawn(list(args), env=env, prefix=prefix), what=f"strace -c lbctl {' '.join(args)[:200]}")
        assert done.exit_code == 0, done.output
        counts = dict.fromkeys(syscalls, 0)
        for line in out.read().splitlines():
            words = line.split()
            if len(words) == 2 and words[0] in counts and words[1].isdigit():
                counts[words[0]] = int(words[1])
    return counts


def run_injected(args: list[str], syscall: str, when: int, action: str, *, env: dict | None = None,
                 timeout: float = 60) -> Proc:
    """`lbctl ARGS` under strace, which injects `action` (`signal=SIGKILL`, `signal=SIGINT`, `error=ENOSPC`) at the
    `when`-th call of `syscall` (counted per thread)."""
    prefix = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
              "-e", f"inject={syscall}:{action}:when={when}"]
    started = time.monotonic()
    return finish(spawn(list(args), env=env, prefix=prefix), timeout=timeout, started=started,
                  what=f"lbctl {' '.join(args)[:200]} ({syscall} #{when}: {action})")
