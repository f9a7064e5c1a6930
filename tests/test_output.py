"""Output that reads the same everywhere (issue 19): piped tables whole, requirements in `show`/`inspect`, the
effective config value, `config export`'s comments, a declined prompt, one exit code for a missing file, and
`freeze` that keeps pin reasons and bundles packages for another machine. The LangBot side of these is in
tests/test_output_langbot.py."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, tree_snapshot
from pkgfactory import make_lbpkg

ID = "acme/knobs"
LONG = "https://hooks.example.com/" + "x" * 74  # 100 characters
CONFIG = [
    {"name": "endpoint", "type": "string", "default": ""},
    {"name": "debug", "type": "boolean", "default": False},
    {"name": "timeout", "type": "integer", "default": 600,
     "description": {"en_US": "How long a request may take (10 min)."}},
    {"name": "doc", "type": "file"},
]


def ok(run, code: int = 0):
    assert run.exit_code == code, run.output
    return run


def package(tmp_path: Path, version: str = "1.0.0", requirements: str | None = None, name: str = "knobs") -> Path:
    path = tmp_path / f"acme-{name}-{version}.lbpkg"
    extra = {"requirements.txt": requirements} if requirements is not None else None
    path.write_bytes(make_lbpkg("acme", name, version, config=CONFIG, extra_files=extra))
    return path


@pytest.fixture
def installed(lbctl, tmp_path) -> Path:
    path = package(tmp_path)
    ok(lbctl("install", path))
    return path


def in_terminal(args: list[str], *, answer: str | None = None, columns: int = 100, timeout: float = 60) -> tuple[int, str]:
    """Run lbctl on a pseudo-terminal (stdin, stdout and stderr), answering a prompt with `answer`."""
    master, slave = os.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.Popen([sys.executable, "-m", "lbctl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=REPO, start_new_session=True)
    os.close(slave)
    out, deadline, answered = b"", time.monotonic() + timeout, False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if answer is not None and not answered and b"[y/n]" in out:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, out.decode(errors="replace").replace("\r\n", "\n")


# --- where it acts -----------------------------------------------------------------------------------------


def test_action_lines_on_the_local_target_stay_as_they_were(lbctl, tmp_path):
    path = package(tmp_path)

    installed = ok(lbctl("install", path))
    doc = ok(lbctl("uninstall", ID, "--dry-run", "--json")).json

    assert installed.stdout == f"installed {ID} 1.0.0 (local)\n"
    assert doc["data"]["target"] == "local"
    assert ok(lbctl("list", "--json")).json["data"]["target"] == "local"


# --- piped tables ------------------------------------------------------------------------------------------


def test_a_piped_table_prints_every_value_whole_on_one_line(lbctl, installed):
    ok(lbctl("config", "set", ID, f"endpoint={LONG}"))

    shown = ok(lbctl("config", "show", ID)).stdout  # stdout is not a terminal here: piped
    ok(lbctl("config", "set", ID, "endpoint=one\ntwo\tthree"))
    multiline = ok(lbctl("config", "show", ID)).stdout

    [line] = [line for line in shown.splitlines() if "endpoint" in line]
    assert LONG in line and "..." not in shown, shown
    [line] = [line for line in multiline.splitlines() if "endpoint" in line]
    assert "one\\ntwo\\tthree" in line, multiline
    assert not any(line.startswith(("two", " two")) for line in multiline.splitlines())


def test_a_piped_table_wider_than_the_terminal_is_not_wrapped(lbctl, installed, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    ok(lbctl("config", "set", ID, f"endpoint={LONG}"))

    shown = ok(lbctl("config", "show", ID)).stdout
    outdated = ok(lbctl("outdated")).stdout

    assert [line for line in shown.splitlines() if LONG in line and "endpoint" in line], shown
    assert [line for line in outdated.splitlines()
            if ID in line and "local install: only marketplace installs are updated" in line], outdated


def test_on_a_terminal_long_values_are_still_shortened(lbctl, installed):
    ok(lbctl("config", "set", ID, f"endpoint={LONG}"))

    code, out = in_terminal(["config", "show", ID], columns=100)

    assert code == 0, out
    assert LONG not in out and "https://hooks.example.com/xxx" in out and ("..." in out or "\u2026" in out), out


# --- requirements --------------------------------------------------------------------------------------------


def test_show_and_inspect_list_the_requirements(lbctl, tmp_path):
    path = package(tmp_path, requirements="langbot-plugin\nhumanize>=4\n")
    bare = package(tmp_path, requirements="", name="bare")

    inspected = ok(lbctl("inspect", path)).stdout
    ok(lbctl("install", path))
    shown = ok(lbctl("show", ID)).stdout

    for out in (inspected, shown):
        assert "\nRequirements:\n  langbot-plugin\n  humanize>=4\n" in out, out
    assert "\nRequirements: none\n" in ok(lbctl("inspect", bare)).stdout
    assert ok(lbctl("show", ID, "--json")).json["data"]["plugin"]["requirements"] == ["langbot-plugin", "humanize>=4"]


# --- the effective config value ------------------------------------------------------------------------------


def test_an_unset_value_is_its_default_marked_as_such(lbctl, installed):
    assert ok(lbctl("config", "get", ID, "debug")).stdout == "false\n"
    stored = ok(lbctl("config", "get", ID, "debug", "--json")).json["data"]
    assert (stored["value"], stored["default_used"]) == (False, False)  # lbctl stored the default at install

    ok(lbctl("config", "unset", ID, "debug"))

    assert ok(lbctl("config", "get", ID, "debug")).stdout == "false\n"
    unset = ok(lbctl("config", "get", ID, "debug", "--json")).json["data"]
    assert (unset["value"], unset["default_used"]) == (False, True)
    [line] = [line for line in ok(lbctl("config", "show", ID)).stdout.splitlines() if "debug" in line]
    assert line.split()[-2:] == ["false", "(default)"], line
    row = next(r for r in ok(lbctl("config", "show", ID, "--json")).json["data"]["config"] if r["name"] == "debug")
    assert (row["value"], row["default_used"]) == (False, True)
    inspected = ok(lbctl("inspect", installed, "--json")).json["data"]["plugin"]["config"]
    assert all(r["default_used"] for r in inspected if r["default"] is not None)


# --- config export --------------------------------------------------------------------------------------------


def test_config_export_joins_a_description_and_its_default_with_one_full_stop(lbctl, installed):
    exported = ok(lbctl("config", "export", ID)).stdout

    assert "# timeout: integer. How long a request may take (10 min). Default: 600\n" in exported, exported
    assert not [line for line in exported.splitlines() if line.startswith("#") and ".." in line], exported


# --- a declined prompt -------------------------------------------------------------------------------------------


def test_answering_no_cancels_with_exit_1_and_no_hint_to_bypass_it(lbctl, installed, home):
    before = tree_snapshot(home)

    code, out = in_terminal(["uninstall", "--purge", ID], answer="n")

    assert code == 1, out
    assert "Cancelled; nothing changed" in out and "--yes" not in out and "hint" not in out, out
    assert tree_snapshot(home) == before
    # A prompt that cannot be shown (no terminal) still needs --yes: exit 2 with the hint.
    needed = ok(lbctl("uninstall", "--purge", ID, "--json"), 2).json["errors"][0]
    assert needed["code"] == "confirmation_needed" and "--yes" in needed["hint"]


# --- one exit code for a missing file -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("install", "{missing}.lbpkg"),
    ("install", "-r", "{missing}.toml"),
    ("sync", "{missing}.toml"),
    ("inspect", "{missing}.lbpkg"),
    ("download", "{missing}.lbpkg", "-d", "{tmp}/out"),
    ("config", "import", ID, "{missing}.toml"),
    ("config", "set", ID, "doc=@{missing}.txt"),
], ids=lambda args: " ".join(args[:2]))
def test_a_file_that_does_not_exist_is_exit_5_for_every_command(lbctl, installed, tmp_path, home, args):
    before = tree_snapshot(home)
    argv = [a.format(missing=tmp_path / "nope", tmp=tmp_path) for a in args]

    run = ok(lbctl(*argv, "--json"), 5)

    assert run.json["errors"][0]["code"] == "not_found" and "nope" in run.json["errors"][0]["message"]
    assert tree_snapshot(home) == before


# --- freeze: pins and bundles -----------------------------------------------------------------------------------


@pytest.fixture
def market(market):
    market.add(make_lbpkg("acme", "echo", "1.0.0"))
    return market


def elsewhere(monkeypatch, tmp_path: Path) -> None:
    """Another machine: a fresh home and cache; the plugins file and the bundle are all it has."""
    monkeypatch.setenv("LBCTL_HOME", str(tmp_path / "elsewhere" / "home"))
    monkeypatch.setenv("LBCTL_CACHE_DIR", str(tmp_path / "elsewhere" / "cache"))


def test_freeze_says_when_a_path_is_lbctls_own_copy(lbctl, tmp_path, home):
    path = package(tmp_path)
    ok(lbctl("install", path))
    path.unlink()  # the file it was installed from is gone: the environment's copy is all there is

    run = ok(lbctl("freeze"))

    assert f'path = "{home}' in run.stdout, run.stdout
    assert f"# {ID}: path is lbctl's own copy of the package (installed from {path})" in run.stdout
    assert "freeze --bundle DIR" in run.stderr, run.stderr


def test_freeze_bundle_makes_a_file_that_works_on_another_machine(lbctl, market, tmp_path, monkeypatch):
    path = package(tmp_path)
    ok(lbctl("install", path, "acme/echo==1.0.0"))
    ok(lbctl("pin", "acme/echo", "--reason", "tested with 1.0"))
    path.unlink()
    bundle = tmp_path / "bundle"

    run = ok(lbctl("freeze", "--with-config", "--bundle", bundle, "--bundle-all"))

    assert run.stdout == (f"saved acme/echo 1.0.0 -> {bundle}/acme-echo-1.0.0.lbpkg\n"
                          f"saved {ID} 1.0.0 -> {bundle}/acme-knobs-1.0.0.lbpkg\n"
                          f"wrote {bundle}/plugins.toml (2 plugins)\n")
    text = (bundle / "plugins.toml").read_text()
    assert 'path = "acme-knobs-1.0.0.lbpkg"' in text and 'pin_reason = "tested with 1.0"' in text, text
    assert oct((bundle / "plugins.toml").stat().st_mode & 0o777) == "0o644"

    elsewhere(monkeypatch, tmp_path)
    synced = ok(lbctl("--offline", "--find-links", bundle, "sync", bundle / "plugins.toml", "--json")).json
    assert {(a["id"], a["action"], a["status"]) for a in synced["data"]["actions"]} >= {
        (ID, "install", "done"), ("acme/echo", "install", "done"), ("acme/echo", "pin", "done")}
    listed = {p["id"]: p["source"] for p in ok(lbctl("list", "--json")).json["data"]["plugins"]}
    assert listed == {ID: "local", "acme/echo": "marketplace"}


def test_freeze_bundle_refuses_what_it_cannot_do(lbctl, installed, tmp_path):
    assert "--bundle" in ok(lbctl("freeze", "--bundle-all"), 2).stderr
    secret = ok(lbctl("freeze", "--include-secrets", "--bundle", tmp_path / "b"))
    assert secret.exit_code == 0 and oct((tmp_path / "b" / "plugins.toml").stat().st_mode & 0o777) == "0o600"
