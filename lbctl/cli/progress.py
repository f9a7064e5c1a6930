"""Progress on stderr, only when it is a terminal: a bar per download, a spinner per wait (a marketplace
answer, a LangBot task), so nothing waits in silence."""

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
        from rich.progress import Progress, SpinnerColumn

        with lock:
            if shared["bar"] is None:
                shared["bar"] = Progress(SpinnerColumn(), "{task.description}", _BytesColumn(), console=console,
                                         transient=True)
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


def _BytesColumn():
    """A download's bar, size and speed once bytes arrive; nothing for a plain wait."""
    from rich.progress import BarColumn, DownloadColumn, ProgressColumn, TransferSpeedColumn
    from rich.table import Table

    class BytesColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self.parts = (BarColumn(), DownloadColumn(), TransferSpeedColumn())

        def render(self, task):
            if not task.completed and task.total is None:
                return ""
            row = Table.grid(padding=(0, 1))
            row.add_row(*(part.render(task) for part in self.parts))
            return row

    return BytesColumn()
