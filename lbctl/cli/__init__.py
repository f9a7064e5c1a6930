"""Command-line entry point. `main()` is the one error boundary of lbctl."""

from __future__ import annotations

import os
import sys

# Global options accepted anywhere on the command line (spec §3): name -> takes a value
GLOBAL_OPTIONS: dict[str, bool] = {
    "--home": True, "--index-url": True, "--cache-dir": True, "--find-links": True, "--output": True,
    "-o": True, "--no-cache": False, "--offline": False, "--json": False, "--yes": False, "-y": False,
    "--no-color": False, "--no-progress": False, "--quiet": False, "--verbose": False, "--debug": False,
    "--target": True, "-t": True, "--wait-ready": True, "--timeout": True,
}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options that follow the command to the front, so they work in either place."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        takes_value = GLOBAL_OPTIONS.get(name, False) and "=" not in arg
        if takes_value and i + 1 == len(argv):
            rest.append(arg)  # its value is missing: leave it where it is for the parser to report
            break
        if name in GLOBAL_OPTIONS or _is_verbosity(arg):
            front += argv[i : i + 1 + takes_value]
            i += 1 + takes_value
            continue
        rest.append(arg)
        i += 1
    return front + rest


def _is_verbosity(arg: str) -> bool:
    import re

    return re.fullmatch(r"-(q+|v+)", arg) is not None


def command_name(argv: list[str]) -> str:
    """Best-effort command path for the JSON envelope when parsing itself failed."""
    words = [a for a in hoist_global_options(argv) if not a.startswith("-")]
    skip = {argv[i + 1] for i, a in enumerate(argv[:-1]) if GLOBAL_OPTIONS.get(a)}
    words = [w for w in words if w not in skip]
    if words[:1] and words[0] in ("market", "config", "cache", "runtime", "help", "target", "deps", "index") and len(words) > 1:
        return " ".join(words[:2])
    return words[0] if words else ""


def main(argv: list[str] | None = None) -> None:
    from lbctl import interrupts

    interrupts.install()  # first of all: a Ctrl-C during start-up is an interruption too, not a traceback
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):  # fast path: no third-party import at all
        from lbctl import __version__

        sys.stdout.write(f"lbctl {__version__}\n")
        sys.exit(0)
    code = run(argv)
    interrupts.finish()
    interrupts.ignore()  # Python gives SIGINT back its default action while it shuts down: the result is out
    if _abandoned_threads():
        # Daemon threads still running (downloads an interruption cut short): CPython can crash finalizing the
        # interpreter under them (a rare SIGSEGV in the kill stress). Run the exit handlers (scratch directories,
        # logging), then leave without finalizing: these threads would have been abandoned anyway.
        import atexit

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
                pass
        atexit._run_exitfuncs()
        os._exit(code)
    import gc

    gc.freeze()  # the collections of the interpreter's shutdown would walk every object left (~20 ms of a list)
    sys.exit(code)


def _abandoned_threads() -> bool:
    threading = sys.modules.get("threading")  # never imported: no thread was started
    if threading is None:
        return False
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    return bool(others) and all(t.daemon for t in others)


def run(argv: list[str]) -> int:
    """Run one command line and return its exit code; Ctrl-C and SIGTERM give 130 (and the JSON envelope)."""
    from lbctl import interrupts

    with interrupts.installed():
        try:
            from lbctl.cli.app import invoke

            return invoke(hoist_global_options(argv), environ=os.environ)
        except KeyboardInterrupt:  # before the command could set up its own error boundary
            return interrupted(argv)


def interrupted(argv: list[str]) -> int:
    from lbctl.cli.session import wants_json
    from lbctl.errors import CommandInterruptedError
    from lbctl.render import Renderer

    from lbctl import interrupts

    interrupts.finish()  # a second signal while this is printed must not cut it short
    renderer = Renderer(json_output=wants_json(argv, os.environ, {}))
    return renderer.error(CommandInterruptedError("interrupted"), command_name(argv))
