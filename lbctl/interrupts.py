"""Ctrl-C and SIGTERM, made deterministic: both raise KeyboardInterrupt in the main thread, except while a commit
is in progress (then it waits until the commit is done) and after the result is printed (then it is ignored).

Only the command-line entry point installs the handler; without it, Python's own Ctrl-C handling applies.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Status:
    def __init__(self) -> None:
        self.received: int | None = None  # the first signal of this run
        self.pending = False  # a signal that came during a commit
        self.depth = 0  # nested commits in progress
        self.finished = False  # the result has been printed


_status = _Status()


def received() -> int | None:
    """The signal that interrupted this run, if any (worker threads stop their network I/O on it)."""
    return _status.received


def _handle(signum: int, frame: Any) -> None:
    if _status.finished:
        return
    _status.received = _status.received or signum
    if _status.depth:
        _status.pending = True
        return
    raise KeyboardInterrupt


@contextmanager
def installed() -> Iterator[None]:
    """Handle SIGINT and SIGTERM for the block (the main thread only; elsewhere nothing changes)."""
    global _status
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _status = _Status()
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block that Ctrl-C does not cut in two: a signal that arrives inside is raised when it ends."""
    _status.depth += 1
    try:
        yield
    finally:
        _status.depth -= 1
        if not _status.depth and _status.pending:
            _status.pending = False
            raise KeyboardInterrupt


def check() -> None:
    """KeyboardInterrupt if a signal came and was lost (swallowed by a library, or raised in a dying thread)."""
    if _status.received is not None and not _status.finished:
        raise KeyboardInterrupt


def finish() -> None:
    """The result is out: from now on a signal changes nothing."""
    _status.finished = True
