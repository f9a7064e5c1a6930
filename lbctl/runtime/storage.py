"""Plugin and workspace storage (the four binary-storage host actions), kept in HOME/storage.db."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Iterable, Iterator

MAX_VALUE_BYTES: Final = 10 * 1024 * 1024

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS storage (
    owner_type TEXT NOT NULL,
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (owner_type, owner, key)
)
"""


class StorageKeyMissing(KeyError):
    pass


class Storage:
    def __init__(self, path: Path, *, timeout: float = 5.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

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

    def purge(self, owner_type: str, owner: str) -> None:
        self._db.execute("DELETE FROM storage WHERE owner_type=? AND owner=?", (owner_type, owner))

    def owners(self, owner_type: str) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT owner FROM storage WHERE owner_type=?",
                                                   (owner_type,))}

    @contextmanager
    def purging(self, owner_type: str, owners: Iterable[str], *, timeout: float) -> Iterator[None]:
        """Delete the owners' rows in one transaction that commits only if the block ends without an error
        (sqlite3.OperationalError when another process holds the database for longer than `timeout`)."""
        self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for owner in owners:
                self.purge(owner_type, owner)
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
