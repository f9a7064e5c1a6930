"""Generate the man page and the shell completion scripts from the command tree.

Regenerate both after changing a command, an option or a help text:

    python -m lbctl.cli.manpage                 # writes man/lbctl.1 and completions/* in this checkout
    python -m lbctl.cli.manpage --output-dir D  # writes them under D instead (tests compare the two)

The output is deterministic: no date, no terminal width, no path of this machine.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any, Final, Iterator

from lbctl.errors import EXIT_CODE_MEANINGS

REGENERATE: Final = "python -m lbctl.cli.manpage"
REPO: Final = Path(__file__).resolve().parents[2]
COMPLETION_FILES: Final = {"bash": "completions/lbctl.bash", "zsh": "completions/_lbctl",
                           "fish": "completions/lbctl.fish"}
MAN_FILE: Final = "man/lbctl.1"

# Value names of options whose type alone says too little.
METAVARS: Final = {"--home": "DIR", "--index-url": "URL", "--cache-dir": "DIR", "--find-links": "DIR",
                   "--output": "table|json", "--timeout": "SECONDS", "--dest": "DIR", "--requirements": "FILE",
                   "--to": "SPEC", "--exclude": "ID", "--source": "SOURCE", "--args": "JSON"}
TYPE_METAVARS: Final = {"path": "PATH", "float": "NUMBER", "int": "N"}

ENVIRONMENT: Final = (
    ("LBCTL_HOME", "The environment directory, as \\fB\\-\\-home\\fR."),
    ("LBCTL_INDEX_URL", "The marketplace base URL, as \\fB\\-\\-index\\-url\\fR "
                        "(default https://space.langbot.app)."),
    ("LBCTL_CACHE_DIR", "The download cache, as \\fB\\-\\-cache\\-dir\\fR."),
    ("LBCTL_OFFLINE", "Set to 1 to never use the network, as \\fB\\-\\-offline\\fR."),
    ("LBCTL_FIND_LINKS", "Directories of .lbpkg files, separated by the path separator (:), "
                         "as \\fB\\-\\-find\\-links\\fR."),
    ("LBCTL_OUTPUT", "table or json, as \\fB\\-\\-output\\fR."),
    ("LBCTL_YES", "Set to 1 to answer yes to every confirmation, as \\fB\\-\\-yes\\fR."),
    ("NO_COLOR", "Any value turns colour off, as \\fB\\-\\-no\\-color\\fR."),
    ("LBCTL_CONFIG", "The user config file, instead of the platform config directory "
                     "(see \\fBlbctl config\\-path\\fR)."),
    ("LBCTL_LOCK_TIMEOUT", "Seconds to wait for an environment locked by another lbctl process "
                           "before exiting 6 (default 10)."),
    ("LBCTL_TIMEOUT", "The whole-request deadline for network calls and how long to wait for a plugin to "
                      "start, as \\fB\\-\\-timeout\\fR (default 60)."),
    ("LBCTL_TARGET", "The target: local, a target name or a LangBot URL (a comma list where several are "
                     "accepted), as \\fB\\-\\-target\\fR."),
    ("LBCTL_JOBS", "How many targets a fleet command works on at once, as \\fB\\-\\-jobs\\fR (default 128)."),
    ("LBCTL_API_KEY, LANGBOT_API_KEY", "The API key of a LangBot target, when the variable named by "
                                       "\\fBtarget add \\-\\-api\\-key\\-env\\fR is not set."),
    ("LBCTL_WHEELHOUSE", "A wheelhouse that \\fBruntime serve\\fR and \\fBdoctor\\fR use as the only index "
                         "for plugin dependencies."),
    ("LANGBOT_PLUGIN_PYPI_INDEX_URL", "The index the runtime installs plugin dependencies from."),
    ("LBCTL_DEBUG", "Set to 1 to show the traceback of errors, as \\fB\\-\\-debug\\fR."),
    ("VISUAL, EDITOR", "The editor \\fBlbctl config edit\\fR opens (VISUAL first)."),
)

FILES: Final = (
    ("HOME", "The environment: \\fB\\-\\-home\\fR, else LBCTL_HOME, else the platform data directory "
             "(on Linux \\fI$XDG_DATA_HOME/lbctl\\fR, by default \\fI~/.local/share/lbctl\\fR)."),
    ("HOME/state.json", "The desired state: installed plugins with their provenance, enabled flags, "
                        "and each plugin's config (kept after uninstall unless \\fB\\-\\-purge\\fR). Mode 0600."),
    ("HOME/packages/", "The installed packages, named by sha256, and each plugin's previous package."),
    ("HOME/files/", "Files uploaded as config values of type file."),
    ("HOME/storage.db", "The plugins' stored data (SQLite), kept by \\fBlbctl runtime serve\\fR."),
    ("HOME/targets/", "Per LangBot target: the provenance LangBot forgets, config kept across an uninstall "
                      "(secrets excepted), digests of sent secrets, pins. Mode 0600."),
    ("CONFIG_DIR/credentials.toml", "API keys (and optional logins) stored by \\fBlbctl target login\\fR. "
                                    "Mode 0600."),
    ("HOME/runtime/", "The running host's socket (host.sock), lock and status files."),
    ("HOME/.lock", "The lock that keeps two lbctl processes from changing the environment at once."),
    ("CACHE", "The download cache: \\fB\\-\\-cache\\-dir\\fR, else LBCTL_CACHE_DIR, else the platform cache "
              "directory (on Linux \\fI~/.cache/lbctl\\fR); \\fIpackages/\\fR holds packages by sha256, "
              "\\fIindex/\\fR has one small file per author/name==version holding its sha256."),
    ("CONFIG", "The user config file (TOML; keys named like the long options): LBCTL_CONFIG, else the "
               "platform config directory (on Linux \\fI~/.config/lbctl/config.toml\\fR)."),
)


def command_tree() -> Any:
    """The root click command with every command registered."""
    import typer

    from lbctl.cli.app import _register, app

    _register()
    return typer.main.get_command(app)


def render_manpage(root: Any | None = None) -> str:
    root = root or command_tree()
    import typer

    ctx = typer.Context(root, info_name="lbctl")
    lines = [
        f'.\\" {REGENERATE.join(["Generated by `", "`; do not edit."])}',
        '.TH LBCTL 1 "" "lbctl" "User Commands"', ".nh", ".ad l",
        ".SH NAME", "lbctl \\- the package manager for LangBot plugins",
        ".SH SYNOPSIS", ".B lbctl", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _text("lbctl installs, configures and updates LangBot plugins (.lbpkg packages) in an environment "
              "directory, from the LangBot marketplace, local files or URLs, and runs them with the LangBot "
              "Plugin Runtime. Every command works without a runtime and without the network, except those "
              "that must reach the marketplace or a live runtime host."),
        ".PP",
        _text("Data goes to stdout; progress, narration, warnings and prompts go to stderr. With --json, "
              "stdout carries exactly one JSON document, also on failure. Global options may be given before "
              "or after the command. A setting comes from its option, else its environment variable, else "
              "the user config file, else the default."),
        ".SH GLOBAL OPTIONS",
    ]
    lines += _options(root, ctx)
    lines += [".TP", f"{_b('-h')}, {_b('--help')}", "Show the help of lbctl or of a command, and exit."]
    lines.append(".SH COMMANDS")
    for path, command, aliases in commands(root):
        lines += _command(path, command, aliases)
    lines += [".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        lines += [".TP", f".B {name}", text]
    lines += [".SH FILES"]
    for name, text in FILES:
        lines += [".TP", f".I {name}", text]
    lines += [".SH EXIT STATUS"]
    for code, meaning in EXIT_CODE_MEANINGS.items():
        lines += [".TP", f".B {int(code)}", _text(meaning[:1].upper() + meaning[1:] + ".")]
    lines += [".SH SEE ALSO", "\\fBlbctl help exit\\-codes\\fR, \\fBlbctl config\\-path\\fR, "
              "\\fBlbctl completion\\fR \\fIbash\\fR|\\fIzsh\\fR|\\fIfish\\fR"]
    return "\n".join(lines) + "\n"


def commands(root: Any) -> Iterator[tuple[str, Any, list[str]]]:
    """(path, command, aliases) for every visible command, depth first in registration order."""
    import typer

    return _commands(root, typer.Context(root, info_name="lbctl"), "lbctl")


def _commands(group: Any, ctx: Any, prefix: str) -> Iterator[tuple[str, Any, list[str]]]:
    import typer

    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = typer.Context(command, info_name=name, parent=ctx)
        aliases = [n for n in group.list_commands(ctx) if n != name and _same(group.get_command(ctx, n), command)]
        yield f"{prefix} {name}", command, aliases
        if hasattr(command, "commands"):
            yield from _commands(command, sub, f"{prefix} {name}")


def _same(other: Any, command: Any) -> bool:
    def target(cmd: Any) -> Any:
        return getattr(cmd.callback, "__wrapped__", cmd.callback)

    return bool(other is not None and other.hidden and command.callback and target(other) is target(command))


def _command(path: str, command: Any, aliases: list[str]) -> list[str]:
    import typer

    ctx = typer.Context(command, info_name=path)
    lines = [".SS " + _quote(path), " ".join([_b(path), *_usage(command, ctx)]), ".PP"]
    help_text = inspect.cleandoc(command.help or "")
    for i, paragraph in enumerate(p for p in help_text.split("\n\n") if p.strip()):
        lines += [".PP"] * bool(i) + [_text(" ".join(paragraph.split()))]
    if aliases:
        lines += [".PP", "Alias: " + ", ".join(_b(a) for a in aliases) + "."]
    if hasattr(command, "commands"):
        lines += [".PP", "Subcommands: " + ", ".join(_b(n) for n in command.list_commands(ctx)
                                                     if not command.get_command(ctx, n).hidden) + "."]
    lines += _arguments(command) + _options(command, ctx)
    return lines


def _usage(command: Any, ctx: Any) -> list[str]:
    pieces = []
    if any(_is_option(p) for p in command.params):
        pieces.append("[\\fIOPTIONS\\fR]")
    if hasattr(command, "commands"):
        pieces.append("\\fICOMMAND\\fR [\\fIARGS\\fR]...")
    pieces += [_i(_argument_name(p)) for p in command.params if not _is_option(p)]
    return pieces


def _arguments(command: Any) -> list[str]:
    lines = []
    for param in command.params:
        if not _is_option(param) and getattr(param, "help", None):
            lines += [".TP", _i(_argument_name(param)), _text(param.help)]
    return lines


def _options(command: Any, ctx: Any) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        if not _is_option(param) or param.hidden or param.name == "help":
            continue
        names = ", ".join(_b(n) for n in sorted([*param.opts, *param.secondary_opts], key=len))
        value = _option_metavar(param)
        lines += [".TP", names + (" " + _i(value) if value else ""), _text(_option_help(param))]
    return lines


def _is_option(param: Any) -> bool:
    return type(param).__name__ == "TyperOption"


def _argument_name(param: Any) -> str:
    name = (param.metavar or param.name.upper()).strip("[]")
    if param.nargs == -1 and not name.endswith("..."):
        name += "..."
    return name if param.required else f"[{name}]"


def _option_metavar(param: Any) -> str:
    if param.is_flag or param.count:
        return ""
    if param.metavar:
        return param.metavar
    for name in param.opts:
        if name in METAVARS:
            return METAVARS[name]
    return _type_metavar(param)


def _type_metavar(param: Any) -> str:
    """A value name from the parameter's type: a click ParamType (typer <= 0.28) or a type descriptor (0.29)."""
    ptype, desc = getattr(param, "type", None), getattr(param, "type_descriptor", None)
    choices = getattr(ptype, "choices", None) or (desc.choices if desc is not None and desc.is_choice else None)
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    if ptype is not None:
        kind = type(ptype).__name__
    else:
        annotation = getattr(desc.annotation, "__args__", None) or (desc.annotation,)
        kind = getattr(annotation[0], "__name__", "")
    return next((name for key, name in TYPE_METAVARS.items() if key in kind.lower()), "TEXT")


def _option_help(param: Any) -> str:
    text = param.help or ""
    extra = []
    if param.multiple:
        extra.append("repeatable")
    default = param.default
    if not (param.is_flag or param.count) and default not in (None, "", (), []) and not callable(default):
        extra.append(f"default: {default}")
    if extra and "repeatable" in text:
        extra = [e for e in extra if e != "repeatable"]
    return text + (f" [{'; '.join(extra)}]" if extra else "")


def _text(text: str) -> str:
    """Plain text as a groff line: backslashes and hyphens escaped, no line starting with a control char."""
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + escaped if escaped[:1] in (".", "'") else escaped


def _b(text: str) -> str:
    return f"\\fB{_text(text)}\\fR"


def _i(text: str) -> str:
    return f"\\fI{_text(text)}\\fR"


def _quote(text: str) -> str:
    return '"' + _text(text).replace('"', '\\(dq') + '"'


def render_completions() -> dict[str, str]:
    from lbctl.cli.completion import script

    return {path: script(shell) for shell, path in COMPLETION_FILES.items()}


def generated_files() -> dict[str, str]:
    """Every generated file: its path relative to the repository, and its text."""
    return {MAN_FILE: render_manpage(), **render_completions()}


def write(root: Path) -> list[Path]:
    written = []
    for relative, text in generated_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO,
                        help="Directory to write man/ and completions/ under (default: this checkout).")
    args = parser.parse_args(argv)
    for path in write(args.output_dir):
        sys.stderr.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
