"""Kill and interrupt lbctl at random moments of install, update --all, sync, config set and uninstall --purge.

    .venv/bin/python bench/stress_kill.py [--trials N] [--budget SECONDS] [--seed S] [--load N]

Each trial starts from the same environment, runs one command against a local marketplace (a fresh cache each
time, so downloads are in play), and sends SIGKILL, SIGINT or SIGTERM at a random moment of its run (SIGINT and
SIGTERM once lbctl's handler is in place; before that only Python runs). Then it checks:

- the state, once the next run has looked (`lbctl list`, which completes a purge the killed run committed):
  records, config and stored data are exactly as before the command or as after it (never between);
- the exit: SIGINT and SIGTERM give 130 with a JSON envelope, or the command's own result when they came after it;
- leftovers, after that run (which also sweeps): no temporary file, no package nobody refers to, and
  `lbctl verify` passes;
- no exit 10 and no traceback, in any run;
- no secret printed: a secret config value of the environment never appears in any run's output.

`--load N` keeps N busy processes spinning meanwhile, like a parallel test run on a small machine.

Prints one line per command and signal, and a total; exit status 1 when any trial found a problem.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from fakemarket import FakeMarket  # noqa: E402
from hardening_support import environment_snapshot as snapshot, handler_installed  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

PLUGINS = [f"acme/p{i}" for i in range(4)]
SECRET = "lbctl-stress-secret-4c1d"  # acme/p3's api_key: shown as *** if at all
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}


@dataclass
class Tally:
    trials: int = 0
    outcomes: Counter = field(default_factory=Counter)  # before / after
    between: int = 0
    leftovers: int = 0
    bad_exits: int = 0  # exit 10, a traceback, or a SIGINT/SIGTERM without its envelope
    secrets: int = 0  # runs whose output held the secret
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.between or self.leftovers or self.bad_exits or self.secrets)


class Lab:
    """A marketplace, a template environment, and the commands to run against copies of it."""

    def __init__(self, root: Path, market: FakeMarket):
        self.root, self.market = root, market
        self.template = root / "template"
        for pid in PLUGINS + ["acme/p4"]:
            author, name = pid.split("/")
            for version in ("1.0.0", "2.0.0"):
                blob = random.Random(f"{pid}{version}").randbytes(150_000)
                market.add(make_lbpkg(author, name, version, extra_files={"data/blob.bin": blob}))
        self.plugins_file = root / "plugins.toml"
        self.plugins_file.write_text("".join(
            f'[[plugin]]\nid = "{pid}"\nversion = "==2.0.0"\n[plugin.config]\ngreeting = "synced"\n\n'
            for pid in PLUGINS + ["acme/p4"]))
        self._build_template()

    def env(self, home: Path, cache: Path) -> dict:
        return {**os.environ, "LBCTL_HOME": str(home), "LBCTL_CACHE_DIR": str(cache),
                "LBCTL_CONFIG": str(self.root / "config.toml"), "LBCTL_INDEX_URL": self.market.url,
                "LBCTL_LOCK_TIMEOUT": "10", "NO_COLOR": "1"}

    def lbctl(self, home: Path, cache: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "lbctl", *args], env=self.env(home, cache), capture_output=True,
                              text=True, timeout=120)
        if check and done.returncode != 0:
            raise SystemExit(f"lbctl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def _build_template(self) -> None:
        home, cache = self.template, self.root / "template-cache"
        self.lbctl(home, cache, "install", *[f"{pid}==1.0.0" for pid in PLUGINS])
        for pid in PLUGINS:
            self.lbctl(home, cache, "config", "set", pid, "greeting=template")
        self.lbctl(home, cache, "config", "set", "acme/p3", f"api_key={SECRET}", "--force")
        from lbctl.runtime.storage import Storage

        storage = Storage(home / "storage.db")
        for pid in PLUGINS:
            storage.set("plugin", pid, "counter", pid.encode())
        storage._db.close()
        shutil.rmtree(cache)

    def commands(self) -> dict[str, list[str]]:
        return {
            "install": ["install", "acme/p4==1.0.0", "acme/p0==2.0.0", "--json"],
            "update --all": ["update", "--all", "--json"],
            "sync": ["sync", str(self.plugins_file), "--json"],
            "config set": ["config", "set", "acme/p1", "greeting=stress", "count=7", "--json"],
            "uninstall --purge": ["uninstall", "acme/p2", "--purge", "--yes", "--json"],
        }

    def fresh(self, name: str) -> tuple[Path, Path]:
        home, cache = self.root / name / "home", self.root / name / "cache"
        shutil.rmtree(self.root / name, ignore_errors=True)
        shutil.copytree(self.template, home, symlinks=True)
        return home, cache


def leftovers(home: Path, cache: Path) -> list[str]:
    found = [str(p) for root in (home, cache) if root.exists() for p in root.rglob(".*")
             if p.is_file() and p.name.endswith((".tmp", ".part"))]
    state = json.loads((home / "state.json").read_text()) if (home / "state.json").exists() else {"plugins": {}}
    keep = {sha for r in state["plugins"].values() for sha in (r["sha256"], r.get("previous_sha256")) if sha}
    found += [str(p) for p in (home / "packages").glob("*.lbpkg") if p.stem not in keep]
    return found


def bad_output(out: str, err: str, code: int, sig: str) -> str | None:
    if code == 10 or "Traceback" in err or "internal error" in err + out:
        return f"exit {code}: {err.strip()[-300:]} {out.strip()[-400:]}"
    if sig == "KILL":
        return None if code in (0, -9) else f"exit {code} after SIGKILL: {err.strip()[-200:]}"
    if code not in (0, 130):
        return f"exit {code} after SIG{sig}: {err.strip()[-200:]}"
    try:
        doc = json.loads(out)
    except ValueError:
        return f"exit {code} after SIG{sig} without one JSON document: {out[-200:]!r}"
    return None if doc["exit_code"] == code else f"envelope says {doc['exit_code']}, process {code}"


def trial(lab: Lab, command: str, args: list[str], sig: str, expected: tuple[str, str], full: float,
          rng: random.Random, tally: Tally) -> None:
    home, cache = lab.fresh("trial")
    proc = subprocess.Popen([sys.executable, "-m", "lbctl", *args], env=lab.env(home, cache), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if sig != "KILL":
        while not handler_installed(proc.pid) and proc.poll() is None:
            time.sleep(0.002)
    time.sleep(rng.uniform(0, full * 1.1))
    if proc.poll() is None:
        proc.send_signal(SIGNALS[sig])
    out, err = proc.communicate(timeout=120)
    tally.trials += 1
    problem = bad_output(out, err, proc.returncode, sig)
    follow = lab.lbctl(home, cache, "list", "--json", check=False)
    state = snapshot(home)
    if state == expected[0]:
        tally.outcomes["before"] += 1
    elif state == expected[1]:
        tally.outcomes["after"] += 1
    else:
        tally.between += 1
        tally.notes.append(f"{command} SIG{sig}: in-between state {state[:300]}")
    verify = lab.lbctl(home, cache, "verify", check=False)
    problem = problem or bad_output(follow.stdout, follow.stderr, follow.returncode, "INT")
    problem = problem and f"{problem} (killed run: exit {proc.returncode}, next run: exit {follow.returncode})"
    if problem:
        tally.bad_exits += 1
        tally.notes.append(f"{command} SIG{sig}: {problem}")
    if any(SECRET in text for text in (out, err, follow.stdout, follow.stderr, verify.stdout, verify.stderr)):
        tally.secrets += 1
        tally.notes.append(f"{command} SIG{sig}: the secret was printed")
    left = leftovers(home, cache)
    if left or verify.returncode != 0:
        tally.leftovers += 1
        tally.notes.append(f"{command} SIG{sig}: leftovers {left} verify={verify.returncode} {verify.stderr[-200:]}")


def run(trials: int, budget: float, seed: int, out=sys.stdout, only: list[str] | None = None,
        min_trials: int = 0) -> dict[tuple[str, str], Tally]:
    """`trials` per command and signal, in a random order; no new one after `budget` seconds once `min_trials`
    are done (a loaded machine takes longer, it does not check less)."""
    rng = random.Random(seed)
    tallies: dict[tuple[str, str], Tally] = {}
    with tempfile.TemporaryDirectory(prefix="lbctl-stress-") as tmp, FakeMarket() as market:
        market.latency = 0.02
        lab = Lab(Path(tmp), market)
        before = snapshot(lab.template)
        plan = []
        for command, args in lab.commands().items():
            if only and command not in only:
                continue
            home, cache = lab.fresh("reference")
            started = time.monotonic()
            lab.lbctl(home, cache, *args)
            full = time.monotonic() - started
            after = snapshot(home)
            assert after != before, f"{command} changed nothing"
            for sig in SIGNALS:
                tallies[(command, sig)] = Tally()
                plan += [(command, args, sig, (before, after), full)] * trials
        rng.shuffle(plan)
        deadline = time.monotonic() + budget
        for done, (command, args, sig, expected, full) in enumerate(plan):
            if time.monotonic() > deadline and done >= min_trials:
                break
            trial(lab, command, args, sig, expected, full, rng, tallies[(command, sig)])
    report(tallies, out)
    return tallies


def report(tallies: dict[tuple[str, str], Tally], out) -> None:
    out.write(f"{'command':<18} {'signal':<6} {'trials':>6} {'before':>6} {'after':>6} {'between':>7} "
              f"{'leftover':>8} {'bad exit':>8} {'secret':>6}\n")
    total = Tally()
    for (command, sig), t in tallies.items():
        out.write(f"{command:<18} {sig:<6} {t.trials:>6} {t.outcomes['before']:>6} {t.outcomes['after']:>6} "
                  f"{t.between:>7} {t.leftovers:>8} {t.bad_exits:>8} {t.secrets:>6}\n")
        total.trials += t.trials
        total.outcomes.update(t.outcomes)
        total.between += t.between
        total.leftovers += t.leftovers
        total.bad_exits += t.bad_exits
        total.secrets += t.secrets
        total.notes += t.notes
    out.write(f"{'total':<25} {total.trials:>6} {total.outcomes['before']:>6} {total.outcomes['after']:>6} "
              f"{total.between:>7} {total.leftovers:>8} {total.bad_exits:>8} {total.secrets:>6}\n")
    for note in total.notes[:20]:
        out.write(f"  {note}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per command and signal")
    parser.add_argument("--budget", type=float, default=600, help="stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--load", type=int, default=0, help="busy processes to run meanwhile")
    parser.add_argument("--only", action="append", help="only this command (repeatable), e.g. 'config set'")
    args = parser.parse_args()
    print(f"seed {args.seed}, load {args.load}")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        tallies = run(args.trials, args.budget, args.seed, only=args.only)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return 0 if all(t.ok for t in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
