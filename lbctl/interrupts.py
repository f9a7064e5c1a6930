"""Ctrl-C and SIGTERM, made deterministic: the first one raises KeyboardInterrupt in the main thread, except while a
commit is in progress (then it waits until the commit is done) and after the result is printed (then it is
ignored); later ones are ignored so that they cannot cut the clean-up short.
A KeyboardInterrupt that Python had to drop (raised inside a finalizer or an import-lock callback) is not lost:
`check()` raises it again before the result is printed.

Only the command-line entry point installs the handler; without it, Python's own Ctrl-C handling applies.
Imports nothing but `signal` and `sys`, so that it is in place early.
"""

from __future__ import annotations

import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Status:
    def __init__(self) -> None:
        self.received = None  # the first signal of this run
        self.pending = False  # a signal that came during a commit
        self.depth = 0  # nested commits in progress
        self.finished = False  # the result has been printed


_status = _Status()


def received():
    """The signal that interrupted this run, if any (worker threads stop their network I/O on it)."""
    return _status.received


def _handle(signum, frame) -> None:
    if _status.finished or _status.received is not None:
        return  # done, or already unwinding: a second Ctrl-C must not cut the clean-up short
    _status.received = signum
    if _status.depth:
        _status.pending = True
        return
    raise KeyboardInterrupt


def _unraisable(hook):
    def unraisable(info) -> None:
        if not issubclass(info.exc_type, KeyboardInterrupt):  # check() raises it again where it counts
            hook(info)

    return unraisable


def install() -> None:
    """Handle SIGINT and SIGTERM from now on, for the whole process (the command-line entry point)."""
    global _status
    _status = _Status()
    for sig in SIGNALS:
        signal.signal(sig, _handle)
    sys.unraisablehook = _unraisable(sys.__unraisablehook__)


class installed:
    """`install()` for a block, then the previous handlers again (a command run in-process); a no-op when
    the handler is already in place."""

    def __enter__(self) -> None:
        self.previous = None
        if signal.getsignal(signal.SIGINT) is _handle:
            return
        try:
            self.previous = {sig: signal.getsignal(sig) for sig in SIGNALS}, sys.unraisablehook
            install()
        except ValueError:  # not the main thread: signals cannot be handled here
            self.previous = None

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            handlers, sys.unraisablehook = self.previous
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


class deferred:
    """A block that Ctrl-C does not cut in two: a signal that arrives inside is raised when it ends."""

    def __enter__(self) -> None:
        _status.depth += 1

    def __exit__(self, *exc) -> None:
        _status.depth -= 1
        if not _status.depth and _status.pending:
            _status.pending = False
            raise KeyboardInterrupt


def check() -> None:
    """KeyboardInterrupt if a signal came and was lost (dropped by Python, or raised in a dying thread)."""
    if _status.received is not None and not _status.finished:
        raise KeyboardInterrupt


def finish() -> None:
    """The result is out: from now on a signal changes nothing."""
    _status.finished = True


def ignore() -> None:
    """Ignore SIGINT and SIGTERM for the rest of the process (it is exiting)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # A KeyboardInterrupt that passed through code exec'd from a string (a dataclass being created during an
    # import) sets CPython's "unhandled KeyboardInterrupt" flag even though lbctl handled it, and the process
    # would end by killing itself with SIGINT instead of exiting 130. Evaluating a string resets that flag.
    eval("None")  # noqa: S307
