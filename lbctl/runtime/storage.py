"""Plugin and workspace storage (the four binary-storage host actions), kept in HOME/storage.db.

A storage.db that is not a regular SQLite file (a FIFO, a device, a dangling link, garbage) is refused with a
one-line EnvironmentUnusableError; SQLite's own errors (busy, disk full, read-only) become LbctlErrors too, so
that no caller ever shows a traceback for them.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Final, Iterable

from lbctl.errors import EnvironmentUnusableError, LbctlError, PreconditionError

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


BUSY_HINT: Final = "Another process holds the plugin storage (a runtime host?); nothing was changed: stop it or retry."
DAMAGED_HINT: Final = ("Move it away (the plugins' stored data in it is lost) or restore it from a backup; lbctl "
                       "creates a new one.")


def storage_error(exc: sqlite3.Error, path: Path, doing: str) -> LbctlError:
    """What an SQLite error means for the user: another process holds the database (6), the disk or the file
    cannot be used (6)."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return PreconditionError(f"Cannot {doing}: the plugin storage ({path.name}) is busy: {text}", hint=BUSY_HINT)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return EnvironmentUnusableError(f"Cannot {doing}: {path} is not an SQLite database ({text})",
                                        hint=DAMAGED_HINT)
    return EnvironmentUnusableError(f"Cannot {doing}: the plugin storage ({path}): {text}",
                                    hint="Free some space, or make the home writable.")


class Storage:
    def __init__(self, path: Path, *, timeout: float = 5.0):
        self.path = path
        _check_file(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o600))
        except OSError as exc:
            from lbctl.fsutil import unusable

            raise unusable(exc, path, "open") from None
        _check_file(path)  # what was created or opened, in case something took its place meanwhile
        try:
            self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise storage_error(exc, path, "open the plugin storage") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise storage_error(exc, path, "open the plugin storage") from None

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

    def begin_purge(self, owner_type: str, owners: Iterable[str], *, timeout: float) -> None:
        """Delete the owners' rows in a transaction left open: `commit()` or `rollback()` ends it. LbctlError
        (nothing changed) when another process holds the database for longer than `timeout`."""
        try:
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "delete the stored data") from None
        try:
            for owner in owners:
                self.purge(owner_type, owner)
        except BaseException as exc:
            self.rollback()
            if isinstance(exc, sqlite3.Error):
                raise storage_error(exc, self.path, "delete the stored data") from None
            raise

    def commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "delete the stored data") from None

    def rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolls back what it could not commit when the connection closes

    def close(self) -> None:
        self._db.close()


def _check_file(path: Path) -> None:
    """storage.db is a regular file or does not exist yet: a FIFO, a device or a dangling link is refused."""
    from lbctl.fsutil import NotRegularFile, file_kind, unusable

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise unusable(exc, path, "open") from None
        return
    except OSError as exc:
        raise unusable(exc, path, "open") from None
    if not stat.S_ISREG(mode):
        raise unusable(NotRegularFile(path, file_kind(mode)), path, "open")
