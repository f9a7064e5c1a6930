"""The explicit context every use case receives: settings, the environment, clients, callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from lbctl.settings import Settings
from lbctl.state import Environment


def _never(message: str) -> bool:
    return False


@dataclass
class Context:
    settings: Settings
    confirm: Callable[[str], bool] = _never
    progress: Callable[[str, int | None], Any] | None = None
    http_factory: Callable[..., Any] | None = field(default=None, repr=False)

    @cached_property
    def env(self) -> Environment:
        return Environment(self.settings.home, lock_timeout=self.settings.lock_timeout)
