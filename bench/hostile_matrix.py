"""Hostile files and malformed input (issue 17 §4): each is a one-line error with its exit code (spec §6), never
exit 10, a hang, a huge memory peak or a secret printed.

    .venv/bin/python bench/hostile_matrix.py [--only TEXT] [--timeout SECONDS]

Every case starts from a fresh copy of one environment: a marketplace plugin updated once (so a rollback has a
package to go back to) with a secret in its config, rows in storage.db, the packages in the download cache, and
a target with a stored key. Then it makes one file lbctl reads hostile (a FIFO, a link to /dev/zero, a dangling
link, 600 MiB, garbage, a directory) or gives one malformed input (URLs, timeouts, SSL_CERT_FILE, a marketplace
that answers HTML), runs one command, and checks:

- the exit code is the one expected for the case (never 10), and a failure is one `error:` line (and a hint);
- it ends within the time limit (20 s: no hang) and peaks under 200 MB of memory (nothing read whole);
- none of the environment's secrets (a config value, a stored key, LBCTL_API_KEY) is in its output.

Prints one line per case and the totals; exit status 1 when any case failed. tests/test_hardening_hostile.py runs
every case as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from fakemarket import FakeMarket  # noqa: E402
from hardening_support import Proc, run_cli  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

PLUGIN = "acme/echo"
SECRETS = {"config": "lbctl-secret-config-5e1f", "stored key": "lbctl-secret-stored-7a2c",
           "LBCTL_API_KEY": "lbctl-secret-env-93d0"}
KINDS = ("fifo", "/dev/zero", "dangling link", "600 MiB", "garbage", "directory")
MAX_RSS_MB = 200
HUGE = 600 * 1024 * 1024


@dataclass
class Case:
    name: str
    args: list[str]
    codes: tuple[int, ...]  # what the command may exit with (several only where the file decides, e.g. garbage)
    hostile: tuple[str, str] | None = None  # (file, kind) made hostile before the run
    env: dict[str, str] = field(default_factory=dict)  # values may name {market}, {tls}, {html}, {root}
    stdin: bytes | None = None


@dataclass
class Outcome:
    case: Case
    problem: str | None
    proc: Proc | None


# --- the environment -------------------------------------------------------------------------------------


class Lab:
    """A marketplace (plain, TLS, and a web server of HTML pages), a template environment, and cases run against
    copies of it."""

    def __init__(self, root: Path):
        self.root = root
        self.market = FakeMarket().start()
        self.servers: list[ThreadingHTTPServer] = []
        self.tls = self._server(tls=True)
        self.html = self._server(tls=False)
        config = [{"name": "api_key", "type": "secret"}, {"name": "greeting", "type": "string"}]
        for version in ("1.0.0", "2.0.0"):
            self.market.add(make_lbpkg("acme", "echo", version, config=config))
        self.local = root / "local.lbpkg"
        self.local.write_bytes(make_lbpkg("acme", "local", "1.0.0"))
        self.template = root / "template"
        self._build()

    def close(self) -> None:
        self.market.close()
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def _server(self, *, tls: bool) -> str:
        """An https server (the tests' self-signed certificate) or a web server of HTML pages, both answering
        404 for every path: one that is not a marketplace."""
        pages = self.root / "pages"
        pages.mkdir(exist_ok=True)
        (pages / "index.html").write_text("<html><body>A web site</body></html>")

        class Pages(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(pages), **kwargs)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(TESTS / "tls" / "localhost.pem", TESTS / "tls" / "localhost.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    def paths(self, base: Path) -> dict[str, Path]:
        return {"home": base / "home", "cache": base / "cache", "config": base / "config" / "config.toml"}

    def env(self, base: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        paths = self.paths(base)
        env = {"LBCTL_HOME": str(paths["home"]), "LBCTL_CACHE_DIR": str(paths["cache"]),
               "LBCTL_CONFIG": str(paths["config"]), "LBCTL_INDEX_URL": self.market.url, "NO_COLOR": "1",
               "LBCTL_LOCK_TIMEOUT": "2", "LBCTL_API_KEY": SECRETS["LBCTL_API_KEY"], "COLUMNS": "200"}
        return {**env, **{k: self.fill(v, base) for k, v in (extra or {}).items()}}

    def fill(self, text: str, base: Path) -> str:
        return text.format(market=self.market.url, tls=self.tls, html=self.html, root=base, local=self.local)

    def lbctl(self, base: Path, *args: str, stdin: bytes | None = None) -> Proc:
        done = run_cli(*args, env=self.env(base), stdin=stdin, timeout=120)
        if done.exit_code != 0:
            raise SystemExit(f"lbctl {' '.join(args)} failed:\n{done.output}")
        return done

    def _build(self) -> None:
        base = self.template
        self.lbctl(base, "install", f"{PLUGIN}==1.0.0")
        self.lbctl(base, "install", f"{PLUGIN}==2.0.0")  # the update keeps 1.0.0 for a rollback
        self.lbctl(base, "config", "set", PLUGIN, "greeting=hello", "api_key=-", stdin=SECRETS["config"].encode())
        self.lbctl(base, "target", "add", "prod", "http://127.0.0.1:9")
        self.lbctl(base, "target", "login", "prod", stdin=SECRETS["stored key"].encode())
        from lbctl.runtime.storage import Storage

        storage = Storage(base / "home" / "storage.db")
        for i in range(5):
            storage.set("plugin", PLUGIN, f"k{i}", b"stored")
        storage.close()
        state = json.loads((base / "home" / "state.json").read_text())
        record = state["plugins"][PLUGIN]
        self.current, self.previous = record["sha256"], record["previous_sha256"]

    def file(self, base: Path, name: str) -> Path:
        paths = self.paths(base)
        return {
            "state.json": paths["home"] / "state.json",
            "home": paths["home"],
            "user config": paths["config"],
            "credentials": paths["config"].parent / "credentials.toml",
            "storage.db": paths["home"] / "storage.db",
            "stored package": paths["home"] / "packages" / f"{self.current}.lbpkg",
            "previous package": paths["home"] / "packages" / f"{self.previous}.lbpkg",
            "cached package": paths["cache"] / "packages" / f"{self.previous}.lbpkg",
            "cache index entry": paths["cache"] / "index" / "acme__echo==1.0.0",
        }[name]

    def run(self, case: Case, timeout: float = 20) -> Outcome:
        base = self.root / "case"
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(self.template, base, symlinks=True)
        if case.hostile is not None:
            make_hostile(self.file(base, case.hostile[0]), case.hostile[1])
        args = [self.fill(a, base) for a in case.args]
        try:
            proc = run_cli(*args, env=self.env(base, case.env), stdin=case.stdin, timeout=timeout)
        except AssertionError as exc:  # run_cli: still running at the time limit (it was killed)
            return Outcome(case, f"hang: {str(exc)[:300]}", None)
        return Outcome(case, judge(case, proc), proc)


def make_hostile(path: Path, kind: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "/dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling link":
        path.symlink_to(path.parent / "gone" / path.name)
    elif kind == "600 MiB":
        with open(path, "wb") as stream:  # sparse: costs no disk, reads as 600 MiB of zeros
            stream.truncate(HUGE)
    elif kind == "garbage":
        path.write_bytes(random.Random(path.name).randbytes(4096))
    elif kind == "directory":
        path.mkdir()
    else:
        raise ValueError(kind)


def judge(case: Case, proc: Proc) -> str | None:
    """What is wrong with how the command ended, or None."""
    out = proc.stdout + proc.stderr
    leaked = [name for name, secret in SECRETS.items() if secret in out]
    if leaked:
        return f"printed a secret ({', '.join(leaked)})"
    if proc.exit_code == 10 or "Traceback" in out or "internal error" in out:
        return f"exit {proc.exit_code}: {proc.stderr.strip()[-300:]}"
    if proc.exit_code not in case.codes:
        return f"exit {proc.exit_code}, expected {' or '.join(map(str, case.codes))}: {proc.stderr.strip()[-300:]}"
    if proc.max_rss_mb > MAX_RSS_MB:
        return f"peak memory {proc.max_rss_mb:.0f} MB"
    if proc.exit_code not in (0, 1):
        lines = proc.stderr.splitlines()
        if not (lines and lines[0].startswith("error: ") and len(lines) <= 2
                and all(line.startswith(("error: ", "hint: ")) for line in lines)):
            return f"not a one-line error: {proc.stderr[-300:]!r}"
    return None


# --- the cases -------------------------------------------------------------------------------------------

INSTALL_LOCAL = ["install", "{local}"]
OUT = "{root}/out"
COMMANDS_OF_FILE: dict[str, list[list[str]]] = {
    "state.json": [["list"], INSTALL_LOCAL, ["config", "show", PLUGIN]],
    "home": [["list"], INSTALL_LOCAL],
    "user config": [["list"]],
    "credentials": [["target", "login", "prod"]],
    "storage.db": [["uninstall", PLUGIN, "--purge", "--yes"]],
    "stored package": [["verify"], ["rollback", PLUGIN, "--yes"]],
    "previous package": [["rollback", PLUGIN, "--yes"]],
    "cached package": [["download", f"{PLUGIN}==1.0.0", "-d", OUT]],
    "cache index entry": [["download", f"{PLUGIN}==1.0.0", "-d", OUT]],
}


def expected(file: str, kind: str, args: list[str]) -> tuple[int, ...]:
    """Exit codes of a command with `file` made hostile as `kind`."""
    if file == "home" and kind == "directory":
        return ()  # the home is a directory: not a case
    if file == "user config" and kind == "garbage":
        return (2,)  # not TOML: bad input
    if file == "credentials" and kind == "garbage":
        return (2, 6)  # not UTF-8 (the file cannot be used) or not TOML (bad input), as the bytes fall
    if file == "stored package":
        return (1,) if args[0] == "verify" else (0,)  # verify reports it; a rollback puts back another package
    if file in ("previous package", "cached package", "cache index entry"):
        # not trusted: passed over and fetched again; a directory in its place is not removed (exit 6)
        return (6,) if kind == "directory" else (0,)
    return (6,)  # a file lbctl keeps that it cannot use: exit 6, nothing changed


def cases() -> list[Case]:
    found = []
    for file, commands in COMMANDS_OF_FILE.items():
        for kind in KINDS:
            for args in commands:
                codes = expected(file, kind, args)
                if codes:
                    name = f"{file} is a {kind}: {' '.join(args)}"
                    for long, short in (("a 600", "600"), ("a /dev", "/dev"), ("{local}", "PKG"), (OUT, "OUT")):
                        name = name.replace(long, short)
                    found.append(Case(name, args, codes, (file, kind), stdin=b"new-key\n"))
    long_host = "a" * 300
    for what, url in (("an unclosed IPv6 address", "http://[::1"), ("port 99999", "http://127.0.0.1:99999"),
                      ("a 300-character host", f"http://{long_host}:80"), ("ESC", "http://127.0.0.1:5300/\x1b[31m")):
        found += [Case(f"target add with {what}", ["target", "add", "bad", url], (2,)),
                  Case(f"--index-url with {what}", ["--index-url", url, "market", "search", "x"], (2,)),
                  Case(f"--target with {what}", ["--target", url, "list"], (2,))]
    found += [
        Case("install https://[::1/x", ["install", "https://[::1/x"], (2,)),
        *[Case(f"--timeout {value}", ["--timeout", value, "list"], (2,)) for value in ("inf", "nan", "-1", "1e300")],
        Case("LBCTL_TIMEOUT=inf", ["list"], (2,), env={"LBCTL_TIMEOUT": "inf"}),
        Case("LBCTL_LOCK_TIMEOUT=nan", ["list"], (2,), env={"LBCTL_LOCK_TIMEOUT": "nan"}),
        Case("SSL_CERT_FILE=/nope", ["--index-url", "{tls}", "market", "show", PLUGIN], (7,),
             env={"SSL_CERT_FILE": "/nope"}),
        Case("SSL_CERT_FILE of no certificate", ["--index-url", "{tls}", "market", "show", PLUGIN], (7,),
             env={"SSL_CERT_FILE": str(TESTS / "tls" / "localhost.key")}),
        Case("an index URL answering HTML 404 pages: install", ["--index-url", "{html}", "install", "acme/weather"],
             (8,)),
        Case("an index URL answering HTML 404 pages: market show", ["--index-url", "{html}", "market", "show",
                                                                    "acme/weather"], (8,)),
        Case("LBCTL_CONFIG=/dev/null is no settings", ["list"], (0,), env={"LBCTL_CONFIG": "/dev/null"}),
    ]
    return found


CASES: dict[str, Case] = {case.name: case for case in cases()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only cases whose name contains this text")
    parser.add_argument("--timeout", type=float, default=20, help="seconds before a case counts as a hang")
    args = parser.parse_args()
    selected = [c for c in CASES.values() if not args.only or args.only in c.name]
    tally: Counter = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lbctl-hostile-") as tmp:
        lab = Lab(Path(tmp))
        try:
            for case in selected:
                outcome = lab.run(case, timeout=args.timeout)
                proc = outcome.proc
                tally["cases"] += 1
                tally["failed"] += outcome.problem is not None
                tally["exit 10"] += proc is not None and proc.exit_code == 10
                tally["hangs"] += proc is None
                tally["secrets printed"] += bool(outcome.problem and "secret" in outcome.problem)
                tally["over memory"] += proc is not None and proc.max_rss_mb > MAX_RSS_MB
                shown = f"exit {proc.exit_code:>3} {proc.max_rss_mb:4.0f} MB {proc.seconds:5.1f} s" if proc else "hang"
                print(f"{'FAIL' if outcome.problem else 'ok  '} {shown}  {case.name}"
                      + (f"\n       {outcome.problem}" if outcome.problem else ""), flush=True)
        finally:
            lab.close()
    print(f"{tally['cases']} cases in {time.monotonic() - started:.0f} s: {tally['failed']} failed, "
          f"{tally['exit 10']} exit 10, {tally['hangs']} hangs, {tally['over memory']} over {MAX_RSS_MB} MB, "
          f"{tally['secrets printed']} secrets printed")
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
