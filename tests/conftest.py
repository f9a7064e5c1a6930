"""Shared fixtures: an isolated home per test and an in-process `lbctl` runner."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests' own plugin (tests/plugins/hello), built with `lbp build`; the repository holds all the tests use.
FIXTURE_LBPKG = REPO / "tests" / "plugins" / "lbctl-tests-hello-0.1.0.lbpkg"
FIXTURE_ID = "lbctl-tests/hello"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return f"exit={self.exit_code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own home, cache and user config; nothing leaks from the machine."""
    for var in ("LBCTL_HOME", "LBCTL_CACHE_DIR", "LBCTL_CONFIG", "LBCTL_INDEX_URL", "LBCTL_OFFLINE",
                "LBCTL_FIND_LINKS", "LBCTL_OUTPUT", "LBCTL_YES", "LBCTL_DEBUG", "VISUAL", "EDITOR",
                "LBCTL_TARGET", "LBCTL_API_KEY", "LANGBOT_API_KEY", "LBCTL_TIMEOUT", "LBCTL_WHEELHOUSE",
                "LANGBOT_PLUGIN_PYPI_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBCTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LBCTL_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LBCTL_INDEX_URL", "http://market.invalid")
    monkeypatch.setenv("LBCTL_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    return tmp_path


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def lbctl():
    """Run the real CLI in-process: `lbctl("install", path, "--json")` -> Run."""
    from lbctl.cli import run

    def invoke(*args: str, input: str = "") -> Run:
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO(input)
        try:
            code = run([str(a) for a in args])
        finally:
            sys.stdout, sys.stderr, sys.stdin = saved
        return Run(code, out.getvalue(), err.getvalue())

    return invoke


@pytest.fixture
def market(monkeypatch):
    """A started FakeMarket (tests/fakemarket.py) that LBCTL_INDEX_URL points at; a test file that needs packages
    published overrides it, asking for this one by the same name."""
    from fakemarket import FakeMarket

    with FakeMarket() as fake:
        monkeypatch.setenv("LBCTL_INDEX_URL", fake.url)
        yield fake


@pytest.fixture
def fixture_lbpkg() -> Path:
    assert FIXTURE_LBPKG.exists(), f"the test plugin is missing: {FIXTURE_LBPKG}"
    return FIXTURE_LBPKG


def tree_snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under the roots with its content: 'nothing changed' is an equality of two snapshots."""
    snap: dict[str, bytes] = {}
    for root in roots:
        if root.exists():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    snap[str(path)] = path.read_bytes()
    return snap


USER, PASSWORD = "admin@lbctl.test", "lbctl-test-password"


def terminal_line(config: pytest.Config):
    """A function that writes one line to the terminal even while pytest captures the output, for a set-up that
    would otherwise stop the progress dots in silence."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(text: str) -> None:
        if reporter is None or capture is None:
            print(text, file=sys.__stderr__, flush=True)
            return
        with capture.global_and_fixture_disabled():
            if getattr(reporter._tw, "width_of_current_line", 0):  # after the dots of `-q`: a line of its own
                reporter.write("\n")
            reporter.write_line(text)

    return say


@pytest.fixture(scope="session")
def langbot_server(tmp_path_factory, pytestconfig):
    """A real LangBot 4.11.2 with a standalone runtime and the suite's fake marketplace, for the whole session
    (tests/langbot_harness.py); its single admin user exists for the tests of the optional login."""
    from fakemarket import FakeMarket
    from langbot_harness import LangBot, ensure_venv

    ensure_venv(say=terminal_line(pytestconfig))  # the first run installs LangBot: minutes, said on the terminal
    with FakeMarket() as market:
        server = LangBot.start(tmp_path_factory.mktemp("langbot"), market_url=market.url)
        try:
            server.init_user(USER, PASSWORD)
            yield server, market
        finally:
            server.stop()
