"""Issue 17 §2: a sync that installs 15 plugins and sets each one's config, against a real LangBot 4.11.2.

    .venv/bin/python bench/bench_langbot_config_sync.py [--runs 20] [--plugins 15] [--json]

Each run syncs a plugins file of N local packages (fresh ids: every one is installed) each with a config,
then a second file that changes every config (N config writes on installed plugins). A run counts as good
when both syncs exit 0, every action is `done`, and LangBot then holds every value. Prints `N of 20 exit 0`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from fakemarket import FakeMarket  # noqa: E402
from langbot_harness import LangBot  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

CONFIG = ({"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
          {"name": "count", "type": "integer", "label": {"en_US": "Count"}, "default": 1, "required": False})


def plugins_file(path: Path, packages: dict[str, Path], value: str) -> Path:
    blocks = [f'[[plugin]]\nid = "{pid}"\npath = "{file}"\n[plugin.config]\ngreeting = "{value} {pid}"\n'
              f'count = {i + 2}\n' for i, (pid, file) in enumerate(sorted(packages.items()))]
    path.write_text("\n".join(blocks))
    return path


def config_of(server: LangBot, plugin_id: str, patience: float = 60.0) -> dict | None:
    """The plugin's config on LangBot; its route answers 404 while the plugin waits for a restart."""
    deadline = time.monotonic() + patience
    while True:
        answer = server.api(f"/plugins/{plugin_id}/config")
        if answer["status"] == 200 or time.monotonic() > deadline:
            return (answer.get("data") or {}).get("config") if answer["status"] == 200 else None
        time.sleep(0.5)


def held(server: LangBot, packages: dict[str, Path], value: str) -> list[str]:
    """The plugins whose config on LangBot is not what the file says."""
    wrong = []
    for i, pid in enumerate(sorted(packages)):
        config = config_of(server, pid) or {}
        if config.get("greeting") != f"{value} {pid}" or config.get("count") != i + 2:
            wrong.append(pid)
    return wrong


def sync(env: dict, url: str, file: Path) -> tuple[int, dict | None, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lbctl", "--target", url, "--json", "sync", str(file)], env=env,
                          capture_output=True, text=True)
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = None
    return done.returncode, doc, time.perf_counter() - start


def one_run(server: LangBot, root: Path, env: dict, run: int, plugins: int) -> dict:
    author = f"bench{run}"
    packages = {}
    for i in range(plugins):
        path = root / f"{author}-p{i}.lbpkg"
        path.write_bytes(make_lbpkg(author, f"p{i}", "1.0.0", config=CONFIG))
        packages[f"{author}/p{i}"] = path
    outcome: dict = {"run": run, "ok": True, "problems": []}
    for phase, value in (("install+config", "first"), ("config", "second")):
        code, doc, seconds = sync(env, server.url, plugins_file(root / f"{author}-{phase}.toml", packages, value))
        actions = (doc or {}).get("data", {}).get("actions") or [] if isinstance((doc or {}).get("data"), dict) else []
        not_done = [f"{a['id']} {a['action']} {a['status']}" for a in actions if a["status"] != "done"]
        wrong = held(server, packages, value)
        outcome[f"{phase} s"] = round(seconds, 1)
        if code != 0 or not_done or wrong or not actions:
            outcome["ok"] = False
            errors = [e.get("message") for e in (doc or {}).get("errors", [])][:3]
            outcome["problems"].append({"phase": phase, "exit": code, "not_done": not_done[:5],
                                        "langbot_lacks": wrong[:5], "errors": errors})
    server.remove_all_plugins()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--plugins", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lbctl-bench-config-sync-"))
    good = 0
    rows = []
    with FakeMarket() as market:
        server = LangBot.start(root / "langbot", market_url=market.url)
        try:
            env = {**os.environ, "LBCTL_HOME": str(root / "home"), "LBCTL_CACHE_DIR": str(root / "cache"),
                   "LBCTL_CONFIG": str(root / "config.toml"), "LBCTL_API_KEY": server.api_key}
            for run in range(args.runs):
                row = one_run(server, root, env, run, args.plugins)
                rows.append(row)
                good += row["ok"]
                if not args.json:
                    print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            server.stop()
    shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"runs": args.runs, "exit_0": good, "rows": rows}))
    print(f"{good} of {args.runs} exit 0")


if __name__ == "__main__":
    main()
