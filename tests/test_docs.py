"""The generated man page and completion scripts: fresh, renderable, and working in real shells."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURE_ID, REPO

REGENERATE = "python -m lbctl.cli.manpage"
GENERATED = ["man/lbctl.1", "completions/lbctl.bash", "completions/_lbctl", "completions/lbctl.fish"]
ENVIRONMENT = ["LBCTL_HOME", "LBCTL_INDEX_URL", "LBCTL_CACHE_DIR", "LBCTL_OFFLINE", "LBCTL_FIND_LINKS",
               "LBCTL_OUTPUT", "LBCTL_YES", "NO_COLOR", "LBCTL_CONFIG", "LBCTL_LOCK_TIMEOUT", "LBCTL_DEBUG",
               "VISUAL", "EDITOR", "LBCTL_TARGET", "LBCTL_API_KEY", "LANGBOT_API_KEY", "LBCTL_WHEELHOUSE",
               "LANGBOT_PLUGIN_PYPI_INDEX_URL"]


def python_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run([sys.executable, "-m", "lbctl.cli.manpage", "--output-dir", str(out)], cwd=REPO,
                   env=python_env(COLUMNS="37"), check=True, capture_output=True)
    return out


@pytest.fixture
def lbctl_on_path(tmp_path) -> str:
    """A PATH whose `lbctl` runs this checkout, as the completion scripts call it back."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "lbctl"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m lbctl "$@"\n')
    wrapper.chmod(0o755)
    return f"{bindir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("relative", GENERATED)
def test_generated_files_are_fresh(regenerated, relative):
    committed = REPO / relative
    fresh = (regenerated / relative).read_text()
    stale = f"{relative} is stale: regenerate man/ and completions/ with `{REGENERATE}`"
    assert committed.exists(), stale
    assert committed.read_text() == fresh, stale


def test_generation_is_deterministic(regenerated, tmp_path):
    from lbctl.cli import manpage

    manpage.write(tmp_path)
    for relative in GENERATED:
        assert (tmp_path / relative).read_text() == (regenerated / relative).read_text(), relative
    text = (regenerated / "man/lbctl.1").read_text()
    for private in (str(REPO), str(Path.home()), str(tmp_path.parent)):
        assert private not in text


def test_man_page_covers_every_command_option_and_variable():
    from lbctl.cli import manpage

    root = manpage.command_tree()
    text = manpage.render_manpage(root).replace("\\-", "-")
    for path, command, _ in manpage.commands(root):
        assert f'.SS "{path}"' in text
        for param in command.params:
            for opt in param.opts if type(param).__name__ == "TyperOption" and not param.hidden else ():
                assert f"\\fB{opt}\\fR" in text, (path, opt)
    for name in ENVIRONMENT:
        assert name in text
    for name in ("state.json", "packages/", "files/", "storage.db", "runtime/", "index/", "config.toml"):
        assert name in text
    from lbctl.errors import EXIT_CODE_MEANINGS

    for code in EXIT_CODE_MEANINGS:
        assert f".B {int(code)}\n" in text


def test_man_page_renders(regenerated):
    page = regenerated / "man/lbctl.1"
    if shutil.which("man"):
        command = ["man", "-l", str(page)]
    elif shutil.which("groff"):
        command = ["groff", "-man", "-Tutf8", str(page)]
    else:
        pytest.fail("neither man nor groff is installed (.ci/run installs man-db and groff-base)")
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100",
                                                                          "MANPAGER": "cat", "PAGER": "cat"})
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    for heading in ("NAME", "SYNOPSIS", "GLOBAL OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES", "EXIT STATUS"):
        assert f"\n{heading}\n" in result.stdout
    assert "lbctl install [OPTIONS] [SPEC...]" in result.stdout


def test_completion_command_prints_the_committed_scripts(lbctl):
    for shell, relative in (("bash", "completions/lbctl.bash"), ("zsh", "completions/_lbctl"),
                            ("fish", "completions/lbctl.fish")):
        result = lbctl("completion", shell)
        assert result.exit_code == 0, result.output
        assert result.stdout == (REPO / relative).read_text()
    assert lbctl("completion", "tcsh").exit_code == 2


def test_bash_completes_commands_installed_ids_and_cached_specs(lbctl, fixture_lbpkg, tmp_path, lbctl_on_path):
    bash = shutil.which("bash")
    assert bash is not None, "bash is not installed"
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    from lbctl.cache import Cache

    cache = Cache(tmp_path / "cache")  # the autouse fixture's LBCTL_CACHE_DIR
    cache.packages.mkdir(parents=True)
    (cache.packages / f"{'a' * 64}.lbpkg").write_bytes(b"")
    cache.remember("acme/echo", "1.0.0", "a" * 64)
    cache.remember("acme/gone", "1.0.0", "b" * 64)  # indexed, but its package was removed
    other_home = tmp_path / "other"
    script = f"""
source {REPO / 'completions/lbctl.bash'}
complete -p lbctl
ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
         _lbctl_completion lbctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
         echo "$(IFS=,; echo "${{COMPREPLY[*]}}")"; }}
ask lbctl ins
ask lbctl show ''
ask lbctl uninstall {FIXTURE_ID} ''
ask lbctl install acme/
ask lbctl install acme/echo@
ask lbctl show --home {other_home} ''
ask lbctl doctor --
"""
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PATH": lbctl_on_path}, timeout=120)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "_lbctl_completion" in lines[0]
    assert set(lines[1].split(",")) == {"install", "inspect"}
    assert lines[2] == FIXTURE_ID
    assert lines[3] == ""
    assert lines[4] == "acme/echo"
    assert lines[5] == "acme/echo@1.0.0"
    assert lines[6] == ""
    assert "--help" in lines[7].split(",")


def test_zsh_script_parses_and_completes(lbctl, fixture_lbpkg, lbctl_on_path):
    zsh = shutil.which("zsh")
    if zsh is None:
        text = (REPO / "completions/_lbctl").read_text()
        assert text.startswith("#compdef lbctl\n") and "_lbctl_completion()" in text
        pytest.fail("zsh is not installed (.ci/run installs it): only the script's shape was checked")
    subprocess.run([zsh, "-n", str(REPO / "completions/_lbctl")], check=True)
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    # compsys is not loaded in `zsh -f`: stand-ins print what the script hands to it.
    script = f"""
compdef() {{ print -r -- "compdef $*"; }}
_arguments() {{ print -r -- "$*"; }}
_files() {{ print -r -- "FILES"; }}
source {REPO / 'completions/_lbctl'}
words=(lbctl uninstall ''); CURRENT=3; _lbctl_completion
words=(lbctl install ./); CURRENT=3; _lbctl_completion
"""
    result = subprocess.run([zsh, "-f", "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PATH": lbctl_on_path}, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["compdef _lbctl_completion lbctl",
                                          f'*: :(("{FIXTURE_ID}"))', "FILES"]


def test_fish_script_parses_and_completes(lbctl, fixture_lbpkg, lbctl_on_path):
    fish = shutil.which("fish")
    if fish is None:
        text = (REPO / "completions/lbctl.fish").read_text()
        assert "complete --command lbctl" in text and "_LBCTL_COMPLETE=complete_fish" in text
        pytest.fail("fish is not installed (.ci/run installs it): only the script's shape was checked")
    subprocess.run([fish, "--no-execute", str(REPO / "completions/lbctl.fish")], check=True)
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    script = f"source {REPO / 'completions/lbctl.fish'}; complete -C 'lbctl disa'; complete -C 'lbctl show '"
    result = subprocess.run([fish, "--no-config", "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PATH": lbctl_on_path}, timeout=120)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("disable\t")
    assert lines[1] == FIXTURE_ID


def test_nothing_new_is_imported_for_version():
    code = "import sys, lbctl.cli; print(' '.join(sorted(m for m in sys.modules if m.startswith('lbctl'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(),
                            check=True)
    loaded = result.stdout.split()
    for module in ("lbctl.cli.completion", "lbctl.cli.manpage", "lbctl.ops.doctor", "lbctl.cli.misc"):
        assert module not in loaded
