"""Every ```console block of README.md, run as written in a terminal (a pseudo-terminal, 100 columns, no colour)
in one fresh session: the output must be what the README shows.

The session is the reader's after the set-up: the `lbctl` commands of the set-up line have run, and the
variables the README has them export are set as `python tests/demo.py --langbot` says (LBCTL_INDEX_URL: its
marketplace, built here by demo.populate; LANGBOT_API_KEY: the suite's real LangBot, which stands for
`http://127.0.0.1:5300`). `lbctl runtime serve` (shown "in another terminal") is started in the background for
the blocks after it. In an expected output `…` stands for any text on its line, and a line holding only `…` for
any lines. The demo itself is checked to serve what the marketplace blocks show.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import demo
from conftest import REPO

README = REPO / "README.md"
DOC_LANGBOT = f"http://127.0.0.1:{demo.LANGBOT_PORT}"
DOC_MARKET = f"http://127.0.0.1:{demo.MARKET_PORT}"
COLUMNS, ROWS = 120, 50
BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
SETUP = re.compile(r"^```sh\n(python3 -m venv .*?)\n```", re.M)


@dataclass
class Step:
    command: str
    expected: str
    line: int


def steps(text: str) -> list[Step]:
    found = []
    for block in BLOCK.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        current: Step | None = None
        for offset, line in enumerate(block.group(1).splitlines()):
            if line.startswith("$ "):
                current = Step(line[2:], "", first + offset)
                found.append(current)
            elif current is not None:
                current.expected += line + "\n"
    return found


def pattern(expected: str) -> re.Pattern:
    parts = []
    for line in expected.splitlines():
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[^\n]*?".join(re.escape(piece) for piece in line.rstrip().split("…")) + r"\n")
    return re.compile("".join(parts))


def in_terminal(command: str, env: dict, timeout: float = 120) -> str:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(["bash", "-c", command], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=REPO, start_new_session=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.wait(timeout=10)
    return screen_text(b"".join(chunks))


def screen_text(output: bytes) -> str:
    """What a terminal shows once `output` is written to it: progress bars erased, cursor moves applied."""
    import pyte

    screen = pyte.Screen(COLUMNS, 5000)
    pyte.ByteStream(screen).feed(output)
    lines = [line.rstrip() for line in screen.display[: screen.cursor.y + 1]]
    while lines and not lines[-1]:
        lines.pop()
    return "".join(line + "\n" for line in lines)


def setup_commands(text: str) -> list[str]:
    """The lbctl commands of the set-up line (after the virtualenv is made and lbctl installed)."""
    line = SETUP.search(text)
    assert line is not None, "README.md has no set-up line (```sh python3 -m venv ...)"
    return [part.strip() for part in line.group(1).split("&&") if part.strip().startswith("lbctl ")]


@contextmanager
def open_session(tmp_path: Path, server, market) -> Iterator[tuple[dict, list]]:
    """The README's world: the demo marketplace's plugins, a fresh home, `lbctl` on the PATH, the set-up done."""
    demo.populate(market)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lbctl").symlink_to(Path(sys.executable).parent / "lbctl")  # `lbctl` as an activated venv has it
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "LANG": "C.UTF-8", "TERM": "xterm",
           "NO_COLOR": "1", "COLUMNS": str(COLUMNS), "LBCTL_HOME": str(tmp_path / "lbctl-home"),
           "LBCTL_CACHE_DIR": str(tmp_path / "lbctl-cache"), "LBCTL_CONFIG": str(tmp_path / "config.toml"),
           "LBCTL_INDEX_URL": market.url, "LANGBOT_API_KEY": server.api_key}
    for command in setup_commands(README.read_text()):
        done = subprocess.run(["bash", "-c", command], env=env, cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, f"the set-up's `{command}` failed: {done.stderr}"
    hosts: list[subprocess.Popen] = []
    try:
        yield env, hosts
    finally:
        for host in hosts:
            host.send_signal(signal.SIGINT)
            host.wait(timeout=30)
        server.remove_all_plugins()


def _settled(env: dict) -> bool:
    """The host is up and no plugin is still starting."""
    done = subprocess.run(["lbctl", "runtime", "status", "--json"], env=env, capture_output=True, text=True)
    try:
        data = json.loads(done.stdout)["data"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(data and data["host"]) and all(p["state"] != "starting" for p in data["plugins"])


def run_step(step: Step, env: dict, url: str, hosts: list) -> str | None:
    """Run one README command as a terminal would; `lbctl runtime serve` goes to the background."""
    command = step.command.replace(DOC_LANGBOT, url)
    if command.strip() == "lbctl runtime serve":
        hosts.append(subprocess.Popen(["lbctl", "runtime", "serve"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not _settled(env) and time.monotonic() < deadline:
            time.sleep(0.3)
        return None
    return in_terminal(command, env).replace(url, DOC_LANGBOT)


@pytest.mark.langbot
@pytest.mark.runtime
def test_every_console_block_of_the_readme_prints_what_it_shows(tmp_path, langbot_server):
    text = README.read_text()
    for told in ("python tests/demo.py\n", f"export LBCTL_INDEX_URL={DOC_MARKET}\n", "python tests/demo.py --langbot\n",
                 "`export LANGBOT_API_KEY=lbk_…`"):  # what the session below sets up, the README tells the reader
        assert told in text, told
    server, market = langbot_server
    with open_session(tmp_path, server, market) as (env, hosts):
        for step in steps(README.read_text()):
            actual = run_step(step, env, server.url, hosts)
            assert actual is None or pattern(step.expected).fullmatch(actual), (
                f"README.md:{step.line}: `{step.command}` printed:\n{actual}\n--- but the README shows:\n"
                f"{step.expected}")


def test_the_runner_tells_a_wrong_output_from_a_right_one():
    assert pattern("a … c\n…\nend\n").fullmatch("a b c\nx\ny\nend\n")
    assert screen_text(b"50%\r\x1b[2Kdone\r\nnext\r\n") == "done\nnext\n"
    assert not pattern("a … c\nend\n").fullmatch("a b c\nx\nend\n")
    assert [s.command for s in steps("```console\n$ one\nout\n$ two\n```\n")] == ["one", "two"]


@contextmanager
def running_demo(*args: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """`python tests/demo.py ARGS` in the background: what it printed up to "Ctrl-C stops the demo.", and the
    variables it says to export. Ctrl-C at the end: it must stop cleanly."""
    proc = subprocess.Popen([sys.executable, "tests/demo.py", *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    printed: list[str] = []
    try:
        for line in proc.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops the demo."):
                break
        exports = dict(line.strip()[len("export "):].split("=", 1) for line in printed
                       if line.strip().startswith("export "))
        yield printed, exports
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


def reader_env(tmp_path: Path, exports: dict[str, str]) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lbctl").symlink_to(Path(sys.executable).parent / "lbctl")
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "LANG": "C.UTF-8", "TERM": "xterm",
            "NO_COLOR": "1", "COLUMNS": str(COLUMNS), "LBCTL_HOME": str(tmp_path / "lbctl-home"),
            "LBCTL_CACHE_DIR": str(tmp_path / "lbctl-cache"), "LBCTL_CONFIG": str(tmp_path / "config.toml"),
            **exports}


def test_the_demo_serves_the_marketplace_the_readme_shows(tmp_path):
    """`python tests/demo.py`, then the export it prints: the README's marketplace blocks print what they show."""
    with running_demo("--port", "0") as (printed, exports):
        assert list(exports) == ["LBCTL_INDEX_URL"], printed
        env = reader_env(tmp_path, exports)
        market_steps = [step for step in steps(README.read_text()) if step.command.startswith("lbctl market ")]
        assert len(market_steps) == 2
        for step in market_steps:
            actual = in_terminal(step.command, env)
            assert pattern(step.expected).fullmatch(actual), f"README.md:{step.line}: {actual}"
    assert f"export LBCTL_INDEX_URL={DOC_MARKET}" in README.read_text()  # the demo's own port, 8765


@pytest.mark.langbot
def test_the_demo_with_langbot_runs_one_that_installs_from_the_demo_marketplace(tmp_path):
    with running_demo("--port", "0", "--langbot", "--langbot-port", "0") as (printed, exports):
        assert list(exports) == ["LBCTL_INDEX_URL", "LANGBOT_API_KEY"], printed
        url = re.search(r"LangBot is up at (http://127\.0\.0\.1:\d+)", "\n".join(printed)).group(1)
        env = reader_env(tmp_path, exports)
        done = subprocess.run(["lbctl", "--target", url, "install", "langbot-team/WeatherNow==0.1.0"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"installed langbot-team/WeatherNow 0.1.0 on {url} (source: marketplace)\n"
    assert subprocess.run(["lbctl", "--target", url, "list"], env=env, capture_output=True).returncode == 7  # stopped
