"""Command-line entry point. `main()` is the one error boundary of lbctl."""

from __future__ import annotations

import os
import sys

from lbctl.cli.argv import command_name, hoist_global_options


def main(argv: list[str] | None = None) -> None:
    from lbctl import interrupts

    args = list(sys.argv[1:] if argv is None else argv)
    interrupts.install()  # first of all: a Ctrl-C during start-up is an interruption too, not a traceback
    try:  # a signal before run() has set up its own boundary (a full run under load caught one at the line after install)
        if args in (["--version"], ["-V"]):  # fast path: no third-party import at all
            from lbctl import __version__

            sys.stdout.write(f"lbctl {__version__}\n")
            sys.exit(0)
        code = run(args)
    except KeyboardInterrupt:
        code = interrupted(args)
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
    from lbctl import interrupts
    from lbctl.cli.session import wants_json
    from lbctl.errors import CommandInterruptedError
    from lbctl.render import Renderer

    interrupts.finish()  # a second signal while this is printed must not cut it short
    renderer = Renderer(json_output=wants_json(argv, os.environ, {}))
    return renderer.error(CommandInterruptedError("interrupted"), command_name(argv))
