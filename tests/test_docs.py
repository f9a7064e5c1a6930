"""The generated man page and completion scripts: fresh, renderable, and working in real shells."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conftest import FIXTURE_ID, REPO

REGENERATE = "python -m lbctl.cli.manpage"
GENERATED = ["man/lbctl.1", "completions/lbctl.bash", "completions/_lbctl", "completions/lbctl.fish"]
ENVIRONMENT = ["LBCTL_HOME", "LBCTL_INDEX_URL", "LBCTL_CACHE_DIR", "LBCTL_OFFLINE", "LBCTL_FIND_LINKS",
               "LBCTL_OUTPUT", "LBCTL_YES", "NO_COLOR", "LBCTL_CONFIG", "LBCTL_LOCK_TIMEOUT", "LBCTL_DEBUG",
               "VISUAL", "EDITOR", "LBCTL_TARGET", "LBCTL_JOBS", "LBCTL_API_KEY", "LANGBOT_API_KEY", "LBCTL_WHEELHOUSE",
               "LANGBOT_PLUGIN_PYPI_INDEX_URL"]


ROFF_REQUESTS = {'.\\"', ".TH", ".SH", ".SS", ".TP", ".PP", ".B", ".I", ".ad", ".nh", ".RS", ".RE", ".IP", ".br"}


def python_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run([sys.executable, "-m", "lbctl.cli.manpage", "--output-dir", str(out)], cwd=REPO,
                   env=python_env(COLUMNS="37"), check=True, capture_output=True)
    return out


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
        text = page.read_text()
        assert {line.split()[0] for line in text.splitlines() if line.startswith(".")} <= ROFF_REQUESTS
        for heading in ("NAME", "SYNOPSIS", "GLOBAL OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES", "EXIT STATUS"):
            assert f"\n.SH {heading}\n" in text
        pytest.skip("man and groff are not installed: man/lbctl.1 was checked as text, not rendered "
                    "(install man-db to render it)")
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


# --- completion -----------------------------------------------------------------------------------------------
# The scripts call lbctl back; lbctl answers from files only. Every case below is asked through the protocol
# in-process (whatever shells the machine has) and in each real shell that is installed.

KEYED = "acme/keyed"
FILE, DIR = "file", "dir"
CASES = [  # (command line up to the cursor, the values offered, whether the shell also completes paths)
    ("lbctl show ", {FIXTURE_ID, KEYED}, None),
    ("lbctl uninstall lbctl-tests/hello ", {KEYED}, None),
    ("lbctl config show lbctl-t", {FIXTURE_ID}, None),
    ("lbctl --target ", {"local", "prod", "staging", "env=eu", "env=us", "tier=db"}, None),
    ("lbctl list -t ", {"local", "prod", "staging", "env=eu", "env=us", "tier=db"}, None),
    ("lbctl list --target=pr", {"--target=prod"}, None),
    ("lbctl list --target prod,", {"prod,local", "prod,staging"}, None),  # names, not a selector
    ("lbctl list --target en", {"env=eu", "env=us"}, None),  # the labels of the targets, as selectors
    ("lbctl list --target env=e", {"env=eu"}, None),
    ("lbctl list --target=env=u", {"--target=env=us"}, None),
    ("lbctl list --target env=eu,", {"env=eu,tier=db"}, None),  # the next label of the selector, another key
    ("lbctl target use ", {"local", "prod", "staging"}, None),
    ("lbctl target remove ", {"prod", "staging"}, None),
    ("lbctl target show s", {"staging"}, None),
    ("lbctl target add ", set(), None),
    ("lbctl config set hello ", {"greeting=", "count=", "mode="}, None),
    ("lbctl config set hello greeting=hey c", {"count="}, None),
    ("lbctl config set hello mode=", {"mode=a", "mode=b"}, None),
    ("lbctl config set keyed ", {"api_key=", "debug="}, None),  # api_key has no default: from the schema
    ("lbctl config set keyed debug=t", {"debug=true"}, None),
    ("lbctl config get keyed ", {"api_key", "debug"}, None),
    ("lbctl config unset keyed ", {"debug"}, None),  # only what is stored
    ("lbctl --target prod show ", {"acme/remote"}, None),  # what lbctl installed there, from its notes
    ("lbctl --target prod config get remote ", {"api_key", "debug"}, None),
    ("lbctl install acme/", {"acme/echo"}, FILE),  # acme/gone is indexed but its package is gone
    ("lbctl install acme/echo@", {"acme/echo@1.0.0"}, FILE),
    ("lbctl market show ", {"acme/echo", FIXTURE_ID, KEYED}, None),
    ("lbctl run-command hello READ", set(), None),  # a text: nothing, not the files of the directory
    ("lbctl sync pyproject.t", set(), FILE),
    ("lbctl --home complet", set(), DIR),
    ("lbctl ta", {"target"}, None),
]
PATHS = {"lbctl sync pyproject.t": {"pyproject.toml"}, "lbctl --home complet": {"completions"},
         "lbctl install acme/": set(), "lbctl install acme/echo@": set()}


@pytest.fixture
def world(lbctl, fixture_lbpkg, tmp_path) -> Path:
    """What completion reads: two installed plugins (one with a key that has no default), marketplace packages
    in the cache, two targets in the user config, and the notes lbctl keeps for one of them."""
    import json

    from lbctl.cache import Cache
    from lbctl.targets.langbot import _notes_name
    from pkgfactory import make_lbpkg

    keyed = make_lbpkg("acme", "keyed", "1.0.0", config=[
        {"name": "api_key", "type": "secret", "required": True, "label": {"en_US": "API key"}},
        {"name": "debug", "type": "boolean", "default": False, "label": {"en_US": "Debug"}}])
    (tmp_path / "keyed.lbpkg").write_bytes(keyed)
    for package in (fixture_lbpkg, tmp_path / "keyed.lbpkg"):
        assert lbctl("install", package).exit_code == 0
    cache = Cache(tmp_path / "cache")  # the autouse fixture's LBCTL_CACHE_DIR
    cache.packages.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(keyed).hexdigest()
    (cache.packages / f"{sha}.lbpkg").write_bytes(keyed)
    cache.remember("acme/echo", "1.0.0", sha)
    cache.remember("acme/gone", "1.0.0", "b" * 64)
    for name, port, labels in (("prod", 9, ["env=us"]), ("staging", 10, ["env=eu", "tier=db"])):  # never contacted
        assert lbctl("target", "add", name, f"http://127.0.0.1:{port}",
                     *[arg for label in labels for arg in ("--label", label)]).exit_code == 0
    notes = tmp_path / "home" / "targets" / _notes_name("http://127.0.0.1:9")
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text(json.dumps({"plugins": {"acme/remote": {"sha256": sha, "source": "marketplace"}}}))
    return tmp_path


def bash_words(line: str) -> list[str]:
    """The words bash makes of a command line, split at `=` too (COMP_WORDBREAKS); the last is the current one
    (`=` itself when the cursor follows it)."""
    words = [piece for word in line.split() for piece in re.split(r"(=+)", word) if piece]
    return words + [""] if line.endswith(" ") else words


def unbroken(line: str, value: str) -> str:
    """A bash answer (for the current bash word) as the whole word it completes."""
    whole = line.split(" ")[-1]
    return whole[: len(whole) - len(bash_words(line)[-1])] + value


def ask_in_process(shell: str, line: str) -> list[tuple[str, str]]:
    """(kind, value) of lbctl's answer to `line`, through the protocol the scripts speak, in this process."""
    from lbctl.cli import completion, run

    words = bash_words(line)
    env = {"_LBCTL_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
           "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    completion.install()
    out, saved = io.StringIO(), sys.stdout
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        sys.stdout = out
        try:
            run([])
        except SystemExit:
            pass
        finally:
            sys.stdout = saved
    text = out.getvalue()
    if shell == "zsh":
        lines = text.split("\n")
        return [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 2, 3)]
    pairs = [tuple(row.split("\t")[:2]) for row in text.splitlines() if row]
    return [(kind, unbroken(line, value) if shell == "bash" and kind == "plain" else value) for kind, value in pairs]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_protocol_completes_each_kind_of_parameter(world, shell):
    for line, values, paths in CASES:
        answer = ask_in_process(shell, line)
        plain = {value for kind, value in answer if kind == "plain"}
        if line == "lbctl ta":
            assert values <= plain, (line, answer)
        else:
            assert plain == values, (line, answer)
        assert {kind for kind, _ in answer if kind != "plain"} == ({paths} if paths else set()), (line, answer)


def test_completion_reads_no_network_and_survives_a_broken_config(world, monkeypatch):
    (world / "config.toml").write_text("this is [not toml")
    assert {v for k, v in ask_in_process("bash", "lbctl --target ") if k == "plain"} == {"local"}
    assert {v for k, v in ask_in_process("bash", "lbctl show ") if k == "plain"} == set()  # home unknown
    monkeypatch.setenv("LBCTL_CONFIG", str(world / "config2.toml"))
    assert {v for k, v in ask_in_process("fish", "lbctl show ") if k == "plain"} == {FIXTURE_ID, KEYED}


@pytest.fixture
def lbctl_on_path(tmp_path) -> str:
    """A PATH whose `lbctl` runs this checkout, as the completion scripts call it back."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "lbctl"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m lbctl "$@"\n')
    wrapper.chmod(0o755)
    return f"{bindir}{os.pathsep}{os.environ['PATH']}"


def shell_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: its completion script was checked through the protocol only "
                    f"(install {name} to run it)")
    return path


def test_bash_completes_each_case(world, lbctl_on_path):
    bash = shell_or_skip("bash")
    asks = "".join(f"ask {' '.join(shlex.quote(w) for w in bash_words(line))}\n" for line, _, _ in CASES)
    script = f"""
source {REPO / 'completions/lbctl.bash'}
complete -p lbctl
ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
         _lbctl_completion lbctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}" 2>/dev/null
         echo "$(IFS="|"; echo "${{COMPREPLY[*]}}")"; }}
{asks}"""
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PATH": lbctl_on_path}, timeout=300, cwd=REPO)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "complete -F _lbctl_completion lbctl"
    for (line, values, _), answer in zip(CASES, lines[1:]):
        got = {unbroken(line, value) for value in answer.split("|") if value}
        assert values <= got if line == "lbctl ta" else got == values, (line, answer)


class Terminal:
    """An interactive shell on a pseudo-terminal, read through a terminal emulator (pyte)."""

    def __init__(self, argv: list[str], env: dict, cwd: Path):
        import pyte

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm"},
                                     cwd=cwd, start_new_session=True)
        os.close(slave)
        self.master, self.raw = master, b""
        self.screen = pyte.Screen(200, 50)
        self.stream = pyte.ByteStream(self.screen)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, done, timeout: float = 60) -> str:
        """Read until done(raw text since the call, current line) holds; the raw text read."""
        start, deadline = len(self.raw), time.monotonic() + timeout
        while not done(self.raw[start:].decode(errors="replace"), self.line()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the shell did not get there: {self.line()!r}\n{self.raw[start:]!r}")
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                data = os.read(self.master, 65536)
                self.raw += data
                self.stream.feed(data)
        return self.raw[start:].decode(errors="replace")

    def line(self) -> str:
        return self.screen.display[self.screen.cursor.y][: self.screen.cursor.x]

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self.master)


def test_tab_in_a_real_bash(world, lbctl_on_path):
    """<TAB> itself, in an interactive bash: word breaks at `=`, no space after `KEY=`, files only where a path
    is expected."""
    bash = shell_or_skip("bash")
    term = Terminal([bash, "--norc", "--noprofile", "-i"], {**os.environ, "PATH": lbctl_on_path}, REPO)
    try:
        term.send(f"PS1='$ '; source {REPO / 'completions/lbctl.bash'}; echo READY$((1))\n")
        term.wait(lambda raw, line: "READY1" in raw)
        for typed, becomes in [("lbctl show lbctl-t", "lbctl show lbctl-tests/hello "),
                               ("lbctl config set hello gr", "lbctl config set hello greeting="),
                               ("lbctl config set keyed debug=t", "lbctl config set keyed debug=true "),
                               ("lbctl list --target=pr", "lbctl list --target=prod "),
                               ("lbctl list --target env=e", "lbctl list --target env=eu "),
                               ("lbctl sync pyproject.t", "lbctl sync pyproject.toml "),
                               ("lbctl install examples/lbctl-examples-d",
                                "lbctl install examples/lbctl-examples-dice-0.1.0.lbpkg ")]:
            term.send(typed + "\t")
            term.wait(lambda raw, line: line == f"$ {becomes}")
            term.send("\x15")  # unix-line-discard
            term.wait(lambda raw, line: line == "$ ")
        term.send("lbctl run-command hello READ\t")  # README.md is there, but a text is not a path
        term.wait(lambda raw, line: "\a" in raw)
        assert term.line() == "$ lbctl run-command hello READ"
    finally:
        term.close()


# An interactive zsh without rc files where compadd also prints what it adds (<<value>>) and <TAB> ends with <<END>>.
ZSH_PROBE = r"""PS1='%% '; fpath=({completions} $fpath); autoload -Uz compinit; compinit -u -D
compadd() {{
  if [[ ${{@[1,(i)(-|--)]}} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a hits; builtin compadd -A hits "$@"; local h; for h in $hits; do print -rn -- "<<$h>>"; done
  builtin compadd "$@"
}}
_probe() {{ zle complete-word; print -rn -- "<<END>>"; }}; zle -N _probe; bindkey '^I' _probe
echo READY$((1))
"""


def test_tab_in_a_real_zsh(world, lbctl_on_path):
    """compsys itself (compinit, the script autoloaded from $fpath as `_lbctl`), one <TAB> after another."""
    zsh = shell_or_skip("zsh")
    term = Terminal([zsh, "-f", "-i"], {**os.environ, "PATH": lbctl_on_path}, REPO)
    try:
        term.send(ZSH_PROBE.format(completions=REPO / "completions"))
        term.wait(lambda raw, line: "READY1" in raw)
        for line, values, paths in CASES:
            term.send(line + "\t")
            raw = term.wait(lambda raw, _: "<<END>>" in raw)
            hits = set(re.findall(r"<<(.*?)>>", raw)) - {"END"}
            term.send("\x15\n")
            expected = values | PATHS.get(line, set())
            assert expected <= hits if line == "lbctl ta" or paths else hits == expected, (line, hits, raw)
        term.send("lbctl config set hello gr\t")  # one match: inserted, and no space after `=`
        term.wait(lambda raw, line: re.sub("<<.*?>>", "", line) == "% lbctl config set hello greeting=")
    finally:
        term.close()


def test_tab_in_a_real_fish(world, lbctl_on_path):
    """fish's own `complete -C` (what <TAB> shows) with the script sourced."""
    fish = shell_or_skip("fish")
    subprocess.run([fish, "--no-execute", str(REPO / "completions/lbctl.fish")], check=True)
    asks = "".join(f"echo '== {line}'; complete -C {shlex.quote(line)}\n" for line, _, _ in CASES)
    result = subprocess.run([fish, "--no-config", "-c", f"source {REPO / 'completions/lbctl.fish'}\n{asks}"],
                            capture_output=True, text=True, env={**os.environ, "PATH": lbctl_on_path}, timeout=300,
                            cwd=REPO)

    assert result.returncode == 0, result.stderr
    answers = [block.splitlines()[1:] for block in result.stdout.split("== ")[1:]]
    for (line, values, paths), answer in zip(CASES, answers, strict=True):
        got = {row.split("\t")[0].rstrip("/") for row in answer}
        expected = values | PATHS.get(line, set())
        assert expected <= got if line == "lbctl ta" or paths else got == expected, (line, answer)


def test_completing_costs_about_what_lbctl_list_costs(world, lbctl_on_path):
    """A <TAB> runs one lbctl that reads a few files, never the network or a LangBot: it costs about the CPU time
    of `lbctl list` (CPU time, best of 5, measured alternately: a busy machine slows both alike)."""
    env = {**os.environ, "PATH": lbctl_on_path}
    tab = {**env, "_LBCTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "lbctl --target prod config get remote "}
    tabs, lists = [], []
    for _ in range(5):
        tabs.append(_cpu(["lbctl"], tab, "debug"))
        lists.append(_cpu(["lbctl", "list"], env, FIXTURE_ID))
    assert min(tabs) < 1.5 * min(lists), (tabs, lists)


def _cpu(argv: list[str], env: dict, expected: str) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert expected in done.stdout, done
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def test_without_zsh_fish_and_man_their_tests_skip_with_one_line_each(tmp_path):
    """A machine with nothing but Python (issue 19): the tests that need zsh, fish or man skip, each saying what is
    missing; the protocol tests still run. Run here with those programs hidden from PATH."""
    path = tmp_path / "path"
    path.mkdir()
    for directory in dict.fromkeys(os.environ["PATH"].split(os.pathsep)):
        for entry in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else ():
            if entry.name not in ("zsh", "fish", "man", "groff") and not (path / entry.name).exists():
                (path / entry.name).symlink_to(entry)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_docs.py",
                             "-k", "real or protocol or man_page_renders"], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PATH": str(path)}, timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 3, result.stdout
    for missing in ("zsh is not installed", "fish is not installed", "man and groff are not installed"):
        assert any(missing in line for line in skips), result.stdout
    assert re.search(r"\b4 passed, 3 skipped\b", result.stdout), result.stdout


def test_nothing_new_is_imported_for_version():
    code = "import sys, lbctl.cli; print(' '.join(sorted(m for m in sys.modules if m.startswith('lbctl'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(),
                            check=True)
    loaded = result.stdout.split()
    for module in ("lbctl.cli.completion", "lbctl.cli.manpage", "lbctl.ops.doctor", "lbctl.cli.misc"):
        assert module not in loaded
