"""Download progress bars on stderr (only created when stderr is a terminal)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


def make_progress(console) -> Callable:
    @contextmanager
    def progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    return progress
