"""Plugin and workspace storage (the four binary-storage host actions), kept in HOME/storage.db.

A storage.db that is not a regular SQLite file (a FIFO, a device, a dangling link, garbage) is refused with a
one-line EnvironmentUnusableError; SQLite's own errors (busy, disk full, read-only) become LbctlErrors too, so
that no caller ever shows a traceback for them.
"""

from __future__ import annotations

from typing import Final

from lbctl.state import StorageFile, storage_error  # noqa: F401 - storage_error: for this module's callers

MAX_VALUE_BYTES: Final = 10 * 1024 * 1024


class StorageKeyMissing(KeyError):
    pass


class Storage(StorageFile):
    """storage.db with the host actions plugins call (set, get, keys, delete), and the owners it holds."""

    def set(self, owner_type: str, owner: str, key: str, value: bytes) -> None:
        if len(value) > MAX_VALUE_BYTES:
            raise ValueError(f"storage value for {key!r} exceeds {MAX_VALUE_BYTES} bytes")
        self._db.execute(
            "INSERT OR REPLACE INTO storage VALUES (?, ?, ?, ?)", (owner_type, owner, key, value)
        )

    def get(self, owner_type: str, owner: str, key: str) -> bytes:
        row = self._db.execute(
            "SELECT value FROM storage WHERE owner_type=? AND owner=? AND key=?", (owner_type, owner, key)
        ).fetchone()
        if row is None:
            raise StorageKeyMissing(key)
        return bytes(row[0])

    def keys(self, owner_type: str, owner: str) -> list[str]:
        rows = self._db.execute(
            "SELECT key FROM storage WHERE owner_type=? AND owner=? ORDER BY key", (owner_type, owner)
        )
        return [row[0] for row in rows]

    def delete(self, owner_type: str, owner: str, key: str) -> None:
        self._db.execute("DELETE FROM storage WHERE owner_type=? AND owner=? AND key=?", (owner_type, owner, key))

    def owners(self, owner_type: str) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT owner FROM storage WHERE owner_type=?",
                                                   (owner_type,))}
