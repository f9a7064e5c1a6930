"""Packages already on disk: the download cache (by sha256, with an index of plugin versions) and
the --find-links directories."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lbctl.errors import LbctlError, NotFoundError, PreconditionError
from lbctl.fsutil import (PRIVATE_FILE, copy_atomic, is_sha256, private_dir, read_own_file,
                          remove_stale_temporaries, sha256_file, write_atomic)


class Cache:
    """Packages by sha256 under `cache_dir/packages`, and an index with one small file per
    `author__name==version` holding its sha256 (parallel downloads never rewrite a shared file).

    Nothing in the cache is trusted: a package is used only while its bytes have the sha256 it is filed under
    (a damaged or replaced one is dropped, so it is downloaded again), and an index entry only when it holds
    a sha256.
    """

    def __init__(self, root: Path, enabled: bool = True):
        self.root = root
        self.enabled = enabled
        self._listing: set[str] | None = None
        self._verified: set[str] = set()
        self._lock = threading.Lock()

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    def entries(self, plugin_id: str | None = None) -> dict[str, str]:
        """`author/name==version` -> sha256 for every indexed package (of one plugin, if given)."""
        prefix = f"{plugin_id.replace('/', '__', 1)}==" if plugin_id else ""
        found = {}
        for name in self._names(prefix):
            if "==" in name:
                pid, _, version = name.partition("==")
                try:
                    sha = read_own_file(self.root / "index" / name, 1024).decode("ascii").strip()
                except (OSError, ValueError, LbctlError):
                    continue  # nothing in the cache is trusted: a FIFO, a device or a damaged entry is passed over
                if is_sha256(sha):
                    found[f"{pid.replace('__', '/', 1)}=={version}"] = sha
        return found

    def _names(self, prefix: str) -> list[str]:
        # One directory listing per Cache: resolving N plugins must not list the index N times.
        with self._lock:
            if self._listing is None:
                try:
                    self._listing = set(os.listdir(self.root / "index"))
                except OSError:
                    self._listing = set()
            return sorted(name for name in self._listing if name.startswith(prefix))

    def versions(self, plugin_id: str) -> dict[str, Path]:
        """version -> cached package of `plugin_id`, only for packages whose bytes match their sha256."""
        if not self.enabled:
            return {}
        found = {}
        for key, sha in self.entries(plugin_id).items():
            pid, _, version = key.partition("==")
            if pid == plugin_id and self.intact(sha):
                found[version] = self.packages / f"{sha}.lbpkg"
        return found

    def intact(self, sha256: str) -> bool:
        """Whether the cached package `sha256` is there with those bytes; a damaged one is removed."""
        path = self.packages / f"{sha256}.lbpkg"
        with self._lock:
            if sha256 in self._verified:
                return True
        try:
            ok = sha256_file(path) == sha256
        except OSError:
            return False
        if not ok:
            path.unlink(missing_ok=True)
            return False
        with self._lock:
            self._verified.add(sha256)
        return True

    def download_dir(self) -> Path:
        """Where downloads land (created owner-only); EnvironmentUnusableError when it cannot be."""
        return private_dir(self.packages, root=self.root)

    def keep(self, path: Path, sha256: str) -> None:
        """Copy a verified package into the cache under its sha256 (so it can be found by hash later)."""
        if not self.enabled or self.intact(sha256):
            return
        copy_atomic(path, self.download_dir() / f"{sha256}.lbpkg", sha256, mode=PRIVATE_FILE)

    def remember(self, plugin_id: str, version: str, sha256: str) -> None:
        name = f"{plugin_id.replace('/', '__', 1)}=={version}"
        index = private_dir(self.root / "index", root=self.root)
        write_atomic(index / name, sha256.encode(), durable=False)  # a lost entry only costs a download
        with self._lock:
            if self._listing is not None:
                self._listing.add(name)

    def tidy(self) -> None:
        """Remove the temporary files of downloads and copies that a killed run left."""
        for directory in (self.packages, self.root / "index"):
            remove_stale_temporaries(directory)


def find_links_index(dirs: tuple[Path, ...]) -> dict[str, dict[str, Path]]:
    """id -> version -> path of the valid packages in the --find-links directories (first one wins)."""
    from lbctl import lbpkg

    found: dict[str, dict[str, Path]] = {}
    for directory in dirs:
        for path in _packages_in(Path(directory)):
            if not path.is_file():
                continue  # a FIFO or a device would hang or never end
            try:
                info = lbpkg.read_file(path)
            except LbctlError:
                continue
            found.setdefault(info.id, {}).setdefault(info.version, path)
    return found


def _packages_in(directory: Path) -> list[Path]:
    """The *.lbpkg files of a --find-links directory; one that is missing (exit 5) or unreadable (exit 6) is an
    error, not an empty directory: a mistyped path would otherwise make an offline install fail for another reason,
    or a connected one download what the directory was meant to provide."""
    try:
        with os.scandir(directory) as entries:
            names = sorted(entry.name for entry in entries if entry.name.endswith(".lbpkg"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        problem = "no such directory" if isinstance(exc, FileNotFoundError) else "not a directory"
        raise NotFoundError(f"--find-links {directory}: {problem}",
                            hint="Name a directory of .lbpkg files (--find-links or LBCTL_FIND_LINKS).") from None
    except OSError as exc:  # unreadable (permissions, I/O): there, but not usable
        raise PreconditionError(f"--find-links {directory}: {exc.strerror or type(exc).__name__}") from None
    return [directory / name for name in names]
