"""The explicit context every use case receives: settings, the environment, clients, callbacks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from lbctl.settings import Settings
from lbctl.state import Environment


def _never(message: str) -> bool:
    return False


@dataclass
class Context:
    settings: Settings
    confirm: Callable[[str], bool] = _never
    progress: Callable[[str], Any] | None = None  # label -> context manager yielding update(done, total)
    http_factory: Callable[..., Any] | None = field(default=None, repr=False)
    _find_links: dict | None = field(default=None, init=False, repr=False)
    _markets: dict = field(default_factory=dict, init=False, repr=False)
    _once: dict = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def waiting(self, label: str):
        """A spinner on a terminal while something slow is awaited (nothing otherwise)."""
        from contextlib import nullcontext

        return self.progress(label) if self.progress else nullcontext()

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        """`make()` once per command for `key`, in whichever thread asks first; the others wait for its value
        or its error. The targets of a fleet that resolve the same entry share one resolution and download."""
        with self._lock:
            slot = self._once.get(key)
            mine = slot is None
            if mine:
                slot = self._once[key] = {"done": threading.Event()}
        if mine:
            try:
                slot["value"] = make()
            except BaseException as exc:
                slot["error"] = exc
                raise
            finally:
                slot["done"].set()
            return slot["value"]
        slot["done"].wait()
        if "error" in slot:
            raise slot["error"]
        return slot["value"]

    @cached_property
    def env(self) -> Environment:
        return Environment(self.settings.home, lock_timeout=self.settings.lock_timeout)

    @cached_property
    def cache(self):
        from lbctl.cache import Cache

        return Cache(self.settings.cache_dir, enabled=not self.settings.no_cache)

    @property
    def find_links(self) -> dict:
        """id -> version -> path for the --find-links packages, each file read once per command."""
        from lbctl.cache import find_links_index

        with self._lock:  # resolutions run in worker threads; build the index once
            if self._find_links is None:
                self._find_links = find_links_index(self.settings.find_links)
            return self._find_links

    @cached_property
    def scratch(self) -> Path:
        """A private temporary directory that lives as long as this context (removed at exit)."""
        import tempfile

        self._scratch = tempfile.TemporaryDirectory(prefix="lbctl-")
        return Path(self._scratch.name)

    @property
    def market(self):
        """The client of the marketplace named by --index-url; building it never touches the network."""
        return self.market_for(self.settings.index_url)

    def market_for(self, index_url: str):
        """One client per marketplace for the whole command, shared by worker threads."""
        from lbctl.errors import NetworkError
        from lbctl.marketplace import MarketplaceClient, make_http

        if self.settings.offline:
            raise NetworkError("Offline: the marketplace cannot be reached",
                               hint="Use --find-links DIR or a cached package, or drop --offline.")
        with self._lock:
            if index_url not in self._markets:
                http = (self.http_factory or make_http)(index_url, timeout=self.settings.timeout)
                self._markets[index_url] = MarketplaceClient(http)
            return self._markets[index_url]
