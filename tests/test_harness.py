"""The test suite on a fresh clone says what it is doing when a set-up takes minutes (issue 19): the first run
installs LangBot for the LangBot tests, and the dots would otherwise stop for ~3 minutes in silence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import langbot_harness
from conftest import REPO


def test_installing_langbot_is_announced_once_with_where_and_how_long(tmp_path, monkeypatch):
    venv = tmp_path / "langbot-venv"
    monkeypatch.setenv("LBCTL_LANGBOT_VENV", str(venv))
    commands = []

    def fake_run(argv, check):  # what building the virtualenv runs, without the 1.6 GB
        commands.append(argv)
        (venv / "bin").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(langbot_harness.subprocess, "run", fake_run)
    said: list[str] = []

    assert langbot_harness.ensure_venv(say=said.append) == venv / "bin" / "python"
    assert [argv[1:3] for argv in commands] == [["-m", "venv"], ["-m", "pip"]]
    assert said[0] == (f"Installing LangBot 4.11.2 for the LangBot tests into {venv} (once; about 3 minutes and "
                       "1.6 GB; LBCTL_LANGBOT_VENV names one to reuse)...")
    assert said[1].startswith("LangBot 4.11.2 installed in ") and len(said) == 2

    said.clear()
    langbot_harness.ensure_venv(say=said.append)  # ready: nothing to say, nothing run
    assert said == [] and len(commands) == 2


def test_a_line_said_during_a_test_reaches_the_terminal_through_pytests_capture(tmp_path):
    (tmp_path / "test_slow.py").write_text(
        "def test_first():\n"
        "    pass\n"
        "def test_slow_set_up(pytestconfig):\n"
        "    from conftest import terminal_line\n"
        "    print('captured, not shown')\n"
        "    terminal_line(pytestconfig)('Installing something big (about 3 minutes)...')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                             str(tmp_path / "test_slow.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [".", "Installing something big (about 3 minutes)..."], result.stdout
    assert "captured, not shown" not in result.stdout


def test_the_session_announces_the_install_before_starting_langbot():
    source = Path(REPO / "tests" / "conftest.py").read_text()
    fixture = source[source.index("def langbot_server"):]
    assert fixture.index("ensure_venv(say=terminal_line(pytestconfig))") < fixture.index("LangBot.start(")
