"""Packages already on disk: the download cache (by sha256, with an index of plugin versions) and
the --find-links directories."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lbctl import lbpkg
from lbctl.errors import LbctlError


class Cache:
    """Packages by sha256 under `cache_dir/packages`, and an index with one small file per
    `author__name==version` holding its sha256 (parallel downloads never rewrite a shared file)."""

    def __init__(self, root: Path, enabled: bool = True):
        self.root = root
        self.enabled = enabled
        self._listing: set[str] | None = None
        self._lock = threading.Lock()

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    def entries(self, plugin_id: str | None = None) -> dict[str, str]:
        """`author/name==version` -> sha256 for every indexed package (of one plugin, if given)."""
        prefix = f"{plugin_id.replace('/', '__', 1)}==" if plugin_id else ""
        found = {}
        for name in self._names():
            if name.startswith(prefix) and "==" in name:
                pid, _, version = name.partition("==")
                try:
                    found[f"{pid.replace('__', '/', 1)}=={version}"] = (self.root / "index" / name).read_text().strip()
                except OSError:
                    continue
        return found

    def _names(self) -> list[str]:
        # One directory listing per Cache: resolving N plugins must not list the index N times.
        with self._lock:
            if self._listing is None:
                try:
                    self._listing = set(os.listdir(self.root / "index"))
                except OSError:
                    self._listing = set()
            return sorted(self._listing)

    def versions(self, plugin_id: str) -> dict[str, Path]:
        if not self.enabled:
            return {}
        found = {}
        for key, sha in self.entries(plugin_id).items():
            pid, _, version = key.partition("==")
            path = self.packages / f"{sha}.lbpkg"
            if pid == plugin_id and path.exists():
                found[version] = path
        return found

    def keep(self, path: Path, sha256: str) -> None:
        """Copy a verified package into the cache under its sha256 (so it can be found by hash later)."""
        if not self.enabled:
            return
        target = self.packages / f"{sha256}.lbpkg"
        if not target.exists():
            from lbctl.fsutil import copy_atomic

            copy_atomic(path, target, sha256)

    def remember(self, plugin_id: str, version: str, sha256: str) -> None:
        index = self.root / "index"
        index.mkdir(parents=True, exist_ok=True)
        name = f"{plugin_id.replace('/', '__', 1)}=={version}"
        tmp = index / f".{name}.{threading.get_ident()}.tmp"
        tmp.write_text(sha256)
        os.replace(tmp, index / name)  # a cache needs no fsync: a lost entry only costs a download
        with self._lock:
            if self._listing is not None:
                self._listing.add(name)


def find_links_index(dirs: tuple[Path, ...]) -> dict[str, dict[str, Path]]:
    """id -> version -> path of the valid packages in the --find-links directories (first one wins)."""
    found: dict[str, dict[str, Path]] = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.lbpkg")):
            try:
                info = lbpkg.read_file(path)
            except LbctlError:
                continue
            found.setdefault(info.id, {}).setdefault(info.version, path)
    return found
