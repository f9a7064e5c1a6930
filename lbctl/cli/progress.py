"""Download progress bars on stderr (only created when stderr is a terminal)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator


def make_progress(console) -> Callable:
    """A factory `progress(label)` -> context manager yielding `update(done_bytes, total_bytes|None)`.

    Downloads run in threads and rich allows one live display, so all bars share one Progress.
    """
    lock = threading.Lock()
    shared: dict = {"bar": None, "users": 0}

    @contextmanager
    def progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with lock:
            if shared["bar"] is None:
                shared["bar"] = Progress("{task.description}", BarColumn(), DownloadColumn(),
                                         TransferSpeedColumn(), console=console, transient=True)
                shared["bar"].start()
            shared["users"] += 1
            bar = shared["bar"]
            task = bar.add_task(label, total=None)
        try:
            yield lambda done, total: bar.update(task, completed=done, total=total)
        finally:
            with lock:
                bar.remove_task(task)
                shared["users"] -= 1
                if shared["users"] == 0:
                    bar.stop()
                    shared["bar"] = None

    return progress
