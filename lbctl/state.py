"""The environment: desired state, plugin config, and a content-addressed package store.

Layout of the home directory (owner-only: directories 0700, files 0600):
  state.json          schema, revision, plugins (records), config (per id; kept after uninstall)
  packages/<sha>.lbpkg every package in use, plus each plugin's previous one (for a rollback)
  files/              files uploaded as `file` config values
  storage.db          the plugins' stored data (SQLite; StorageFile below, the runtime host's Storage)
  .lock               inter-process lock (flock)
One atomic rename of state.json is the commit point of every change. Whatever a killed run left (temporary
files, packages stored for a commit that never came) is removed by the next run that gets the lock.

A purge changes two files, state.json and storage.db, which no single rename covers. state.json is the decision:
the commit that removes a plugin's record and config also lists it under `purging`, and while that entry exists
its rows in storage.db are deleted data that is not yet gone. The same command deletes them right after the
commit and then drops the entry; a run killed in between leaves the entry, and the next run that opens the
environment (any command, `runtime serve`) deletes the rows before anything reads storage. So a crash at any
point leaves the record, the config and the rows all as before, or (once the next run has looked) all gone.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Iterable, Iterator

from lbctl import interrupts
from lbctl.errors import EnvironmentUnusableError, LbctlError, LockedError, PreconditionError, StateCorruptError
from lbctl.fsutil import (PRIVATE_FILE, NotRegularFile, copy_atomic, file_kind, fsync_path, holding_lock, is_sha256,
                          link_atomic, private_dir, read_own_file, read_own_file_stat, remove_stale_temporaries,
                          sha256_file, unusable, write_atomic, writing_to)
from lbctl.models import PackageInfo, Record

SCHEMA: Final = 1
STATE_FILE: Final = "state.json"
MAX_STATE_BYTES: Final = 64 * 1024 * 1024  # 500 plugins with large config take ~2 MiB
# config values nest at most 64 levels (configschema.MAX_NESTING) under plugin id and key, below state.json's top
MAX_NESTING: Final = 64 + 3
ID: Final = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
# field -> (accepted types, required); sha256 fields are checked for their form as well
RECORD_FIELDS: Final[dict[str, tuple[tuple[type, ...], bool]]] = {
    "id": ((str,), True), "version": ((str,), True), "source": ((str,), True), "sha256": ((str,), True),
    "installed_at": ((str,), True), "spec": ((str, type(None)), False), "origin": ((str, type(None)), False),
    "enabled": ((bool,), False), "previous_sha256": ((str, type(None)), False),
    "previous_version": ((str, type(None)), False), "previous_source": ((str, type(None)), False),
    "previous_spec": ((str, type(None)), False), "previous_origin": ((str, type(None)), False),
    "pinned": ((bool,), False), "pin_reason": ((str, type(None)), False),
}  # every field of Record: a test holds them equal
_ABSENT: Final = object()
RECOVER_HINT: Final = ("Restore state.json from a backup, or move it away to start from an empty environment and "
                       "reinstall (`lbctl sync FILE` with a plugins file from `lbctl freeze`).")


@dataclass
class State:
    plugins: dict[str, Record] = field(default_factory=dict)
    config: dict[str, dict] = field(default_factory=dict)
    revision: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    purging: list[str] = field(default_factory=list)  # purged plugins whose stored rows are still to be deleted

    def purge(self, plugin_id: str) -> None:
        """Forget the config of `plugin_id` and delete its stored data, with the same commit."""
        self.config.pop(plugin_id, None)
        if plugin_id not in self.purging:
            self.purging.append(plugin_id)

    def to_json(self) -> dict:
        return {
            **self.extra,
            "schema": SCHEMA,
            "revision": self.revision,
            "plugins": {pid: rec.to_json() for pid, rec in sorted(self.plugins.items())},
            "config": {pid: cfg for pid, cfg in sorted(self.config.items())},
            **({"purging": sorted(self.purging)} if self.purging else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: Path) -> State:
        if not isinstance(data, dict) or not isinstance(data.get("plugins", {}), dict):
            raise _corrupt(where, "it is not an lbctl state file")
        schema = data.get("schema", SCHEMA)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise StateCorruptError(
                f"{where} has schema {schema!r}; this lbctl understands up to {SCHEMA}",
                hint="Upgrade lbctl.",
            )
        data = _migrate(data, schema)
        # Records are checked below to be flat (their fields are scalars; unknown keys are dropped), so only the
        # rest can nest: walking 500 records cost as much as checking them.
        if _nesting({k: v for k, v in data.items() if k != "plugins"}) > MAX_NESTING:
            raise _corrupt(where, f"it is nested more than {MAX_NESTING} levels deep")
        plugins = {pid: _record(pid, rec, where) for pid, rec in data.get("plugins", {}).items()}
        config, revision = data.get("config") or {}, data.get("revision", 0)
        if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
            raise _corrupt(where, "config must map plugin ids to objects")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise _corrupt(where, "revision is not an integer")
        purging = data.get("purging", [])
        if not isinstance(purging, list) or not all(isinstance(p, str) and ID.match(p) for p in purging):
            raise _corrupt(where, "purging must be a list of plugin ids")
        extra = {k: v for k, v in data.items() if k not in ("schema", "revision", "plugins", "config", "purging")}
        return cls(plugins, dict(config), revision, extra, list(purging))


def _nesting(doc: Any) -> int:
    """How deep lists and objects nest in `doc` (without recursion: the document is not trusted yet)."""
    if not isinstance(doc, (dict, list)):
        return 0
    deepest, stack = 0, [(doc, 0)]
    while stack:  # only containers are stacked: a non-empty one at depth d has children at d + 1
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if children:
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return deepest


def _corrupt(where: Path, problem: str) -> StateCorruptError:
    return StateCorruptError(f"{where} is damaged: {problem}", hint=RECOVER_HINT)


def _record(pid: Any, rec: Any, where: Path) -> Record:
    """A plugin record, checked field by field: a wrong type here would surface later as a crash."""
    if not isinstance(pid, str) or not ID.match(pid):
        raise _corrupt(where, f"{str(pid)[:80]!r} is not a plugin id")
    if not isinstance(rec, dict):
        raise _corrupt(where, f"the record of {pid} is not an object")
    fields = {}
    for key, (kinds, required) in RECORD_FIELDS.items():
        value = rec.get(key, _ABSENT)
        if value is _ABSENT:
            if required:
                raise _corrupt(where, f"the record of {pid} has no {key}")
        elif type(value) not in kinds:  # JSON makes exact types: a bool never passes for another type
            raise _corrupt(where, f"{pid}: {key} is {type(value).__name__}, not {kinds[0].__name__}")
        else:
            fields[key] = value
    for key in ("sha256", "previous_sha256"):
        if fields.get(key) is not None and not is_sha256(fields[key]):
            raise _corrupt(where, f"{pid}: {key} is not a sha256")
    if fields["id"] != pid:
        raise _corrupt(where, f"the record filed under {pid} is for {fields['id'][:80]}")
    return Record(**fields)


def _migrate(data: dict, schema: int) -> dict:
    # One function per schema version goes here when the format changes; schema 1 is current.
    return data


class Environment:
    def __init__(self, home: Path, *, lock_timeout: float = 10.0):
        self.home = home
        self.lock_timeout = lock_timeout
        self._last: tuple[tuple[int, ...], State] | None = None  # (identity of state.json, what it held)
        self._unsynced: list[Path] = []  # packages stored by the open transaction, not yet fsynced

    @property
    def state_file(self) -> Path:
        return self.home / STATE_FILE

    @property
    def storage_file(self) -> Path:
        return self.home / "storage.db"

    @property
    def packages_dir(self) -> Path:
        return self.home / "packages"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    def package_path(self, sha256: str) -> Path:
        return self.packages_dir / f"{sha256}.lbpkg"

    def load(self) -> State:
        """The current state, read without the lock. state.json is only ever replaced by a rename, so a file with
        the same inode, size and times is the one already read: its State is returned again (callers never
        change a loaded State; a transaction changes a copy). A state.json that is not a regular file, a dangling
        link (or below one) or larger than MAX_STATE_BYTES is exit 6, never an empty environment."""
        try:
            raw, info = read_own_file_stat(self.state_file, MAX_STATE_BYTES)
        except FileNotFoundError:
            return State()
        identity = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if self._last is not None and self._last[0] == identity:
            return self._last[1]
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise _corrupt(self.state_file, "it is not valid JSON") from None
        state = State.from_json(data, self.state_file)
        self._last = (identity, state)
        return state

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Lock, load, let the caller change a copy, then commit it with one atomic rename.

        An exception (Ctrl-C included) before the commit leaves state.json as it was and removes the packages
        the change stored; a Ctrl-C during the commit takes effect once it is done.
        """
        with self.lock():
            before = self._finish_purges(self.load())
            self._tidy(before)
            state = copy.deepcopy(before)
            self._unsynced = []
            try:
                yield state
                if state.to_json() != before.to_json():
                    state.revision = before.revision + 1
                    with interrupts.deferred():
                        self._commit(before, state)
                        self.collect_garbage(state)
            except BaseException:
                with interrupts.deferred():
                    self._forget_unused()
                raise

    def _save(self, state: State) -> None:
        self._sync_stored()
        data = json.dumps(state.to_json(), indent=1, ensure_ascii=False).encode()
        write_atomic(self.state_file, data, mode=PRIVATE_FILE)

    def _commit(self, before: State, state: State) -> None:
        """Save `state`; when it purges plugins, delete their stored rows with it (see the module's docstring).
        The rows are deleted in an SQLite transaction that is open, holding the database, while state.json is
        replaced, and committed right after: a runtime host cannot write them in between, and a storage.db that
        is busy or cannot be used fails the command before anything changed."""
        if not state.purging or not os.path.lexists(self.storage_file):
            state.purging = []  # no storage.db: nothing stored to delete
            self._save(state)
            return
        storage = StorageFile(self.storage_file, timeout=self.lock_timeout)
        try:
            storage.begin_purge("plugin", state.purging, timeout=self.lock_timeout)
            try:
                self._save(state)  # the commit point: the record, the config and the decision to delete the rows
            except BaseException:
                storage.rollback()
                raise
            try:
                storage.commit()
            except LbctlError as exc:
                storage.rollback()
                raise self._undo(before, exc) from None
        finally:
            storage.close()
        self._forget_purges(state)

    def _undo(self, before: State, exc: LbctlError) -> LbctlError:
        """The rows could not be deleted after state.json was replaced (a disk that filled up in between): put
        state.json back, or if even that fails, say that the next run completes the purge."""
        try:
            self._save(before)
        except LbctlError:
            exc.message += "; the purge is recorded, and the next lbctl command completes it"
            exc.args = (exc.message,)
        return exc

    def _forget_purges(self, state: State) -> None:
        """The rows are gone: drop the `purging` entry (a run that cannot only leaves the next one less to do)."""
        state.purging = []
        try:
            self._save(state)
        except LbctlError:
            pass

    def _finish_purges(self, state: State) -> State:
        """Complete the purges a killed run committed but could not finish (under the lock); LbctlError when the
        plugin storage cannot be used (then nothing may go ahead: the rows would outlive their decision)."""
        if not state.purging:
            return state
        if os.path.lexists(self.storage_file):
            storage = StorageFile(self.storage_file, timeout=self.lock_timeout)
            try:
                storage.begin_purge("plugin", state.purging, timeout=self.lock_timeout)
                storage.commit()
            finally:
                storage.close()
        done = copy.deepcopy(state)
        self._forget_purges(done)
        return done

    def finish_purges(self) -> None:
        """`_finish_purges` for a reader of the plugin storage (the runtime host) before it reads anything."""
        if self.load().purging:
            with self.lock():
                self._finish_purges(self.load())

    def describe_package(self, info: PackageInfo) -> None:
        """Keep what the stored package `info.sha256` says about itself beside it (packages/<sha256>.json), so
        that showing it again needs no unzipping and no YAML; a lost description is only read again from the
        package. Written when the package is first read, not when stored: a file creation costs an install of
        200 packages 0.1-0.25 s here."""
        try:
            write_atomic(self.packages_dir / f"{info.sha256}.json", json.dumps(info.to_json()).encode(), durable=False)
        except LbctlError:
            pass  # a read-only or full home: the package itself still says it all

    def package_info(self, sha256: str) -> PackageInfo | None:
        """The description kept beside a stored package, or None (missing, damaged, or for another package)."""
        try:
            info = PackageInfo.from_json(json.loads(read_own_file(self.packages_dir / f"{sha256}.json", 1 << 20)))
        except (OSError, LbctlError, ValueError, RecursionError, TypeError):
            return None
        return info if info.sha256 == sha256 else None

    def store_package(self, source: Path, sha256: str) -> Path:
        """Store a verified package file under its sha256; a stored copy that was damaged is replaced. It is made
        durable by the commit that records it, before state.json is replaced."""
        return self._store(source, sha256, link=False)

    def store_download(self, source: Path, sha256: str) -> Path:
        """`store_package` of a file lbctl downloaded into its cache: a hard link does instead of a copy (creating
        200 files took an update 0.04-0.19 s here, linking them 0.003 s); a copy where links cannot be made."""
        return self._store(source, sha256, link=True)

    def _store(self, source: Path, sha256: str, *, link: bool) -> Path:
        path = self.package_path(sha256)
        try:
            intact = sha256_file(path) == sha256
        except OSError:
            intact = False
        if not intact:
            if not self._unsynced:
                private_dir(self.packages_dir, root=self.home)
            if not (link and link_atomic(source, path, sha256)):
                copy_atomic(source, path, sha256, mode=PRIVATE_FILE, durable=False)
            self._unsynced.append(path)
        return path

    def _sync_stored(self) -> None:
        """fsync the packages stored since the transaction began, then their directory once (a store of 200
        packages made 200 directory fsyncs): the commit never refers to a package a crash could lose. The files
        are synced 16 at a time: the file system commits concurrent fsyncs together (200 files of an update:
        0.15-0.49 s one by one, 0.03-0.05 s 16 at a time, on ext4 here)."""
        with writing_to(self.packages_dir):
            if len(self._unsynced) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=min(16, len(self._unsynced))) as pool:
                    list(pool.map(fsync_path, self._unsynced))
            else:
                for path in self._unsynced:
                    fsync_path(path)
        if self._unsynced:
            fsync_path(self.packages_dir)
        self._unsynced = []

    def collect_garbage(self, state: State) -> None:
        """Remove stored packages that no record (current or previous) refers to."""
        keep = {r.sha256 for r in state.plugins.values()}
        keep |= {r.previous_sha256 for r in state.plugins.values() if r.previous_sha256}
        try:
            entries = list(os.scandir(self.packages_dir))  # one listing (two globs cost 2 ms with 500 plugins)
        except FileNotFoundError:
            return
        for entry in entries:
            stem, _, kind = entry.name.rpartition(".")
            if kind in ("lbpkg", "json") and not stem.startswith(".") and stem not in keep:
                with suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _forget_unused(self) -> None:
        """After a failed change: drop the packages it stored, judged by the state on disk (which a commit
        cut short by the failure may already have replaced)."""
        try:
            self.collect_garbage(self.load())
        except (OSError, StateCorruptError):
            pass  # the next run tidies up

    def _tidy(self, state: State) -> None:
        """Remove what killed runs left: temporary files, and packages stored for a commit that never came."""
        for directory in (self.home, self.packages_dir, self.files_dir):
            remove_stale_temporaries(directory)
        try:
            self.collect_garbage(state)
        except OSError:
            pass  # a read-only home: nothing can be left there anyway

    def tidy(self) -> None:
        """`_tidy` for a command that changes nothing: only when the environment exists and is not locked."""
        if not (self.home / ".lock").exists():
            return  # never used, or not by this version: nothing to tidy, and nothing to create
        try:
            with self.lock(timeout=0):
                self._tidy(self._finish_purges(self.load()))
        except (LbctlError, OSError):
            pass  # locked, read-only or damaged: the command itself says so if it matters

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        private_dir(self.home)
        with holding_lock(self.home / ".lock", self.lock_timeout if timeout is None else timeout, lambda: LockedError(
                f"The environment {self.home} is locked by another lbctl process",
                hint="Wait for it to finish, or set LBCTL_LOCK_TIMEOUT to wait longer."), poll=0.05):
            yield


# --- storage.db ----------------------------------------------------------------------------------------

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS storage (
    owner_type TEXT NOT NULL,
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (owner_type, owner, key)
)
"""


BUSY_HINT: Final = "Another process holds the plugin storage (a runtime host?); nothing was changed: stop it or retry."
DAMAGED_HINT: Final = ("Move it away (the plugins' stored data in it is lost) or restore it from a backup; lbctl "
                       "creates a new one.")


def storage_error(exc: Exception, path: Path, doing: str) -> LbctlError:
    """What an SQLite error means for the user: another process holds the database (6), the disk or the file
    cannot be used (6)."""
    import sqlite3  # 3 ms of every start that commands not touching storage.db need not pay

    text = str(exc)
    if "locked" in text or "busy" in text:
        return PreconditionError(f"Cannot {doing}: the plugin storage ({path.name}) is busy: {text}", hint=BUSY_HINT)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return EnvironmentUnusableError(f"Cannot {doing}: {path} is not an SQLite database ({text})",
                                        hint=DAMAGED_HINT)
    return EnvironmentUnusableError(f"Cannot {doing}: the plugin storage ({path}): {text}",
                                    hint="Free some space, or make the home writable.")


class StorageFile:
    """HOME/storage.db, opened: the plugins' stored data, rows of (owner_type, owner, key, value). The runtime host
    reads and writes it (lbctl.runtime.storage.Storage); the environment deletes the rows of a purged plugin."""

    def __init__(self, path: Path, *, timeout: float = 5.0):
        import sqlite3

        self.path = path
        _check_file(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o600))
        except OSError as exc:
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

    def purge(self, owner_type: str, owner: str) -> None:
        self._db.execute("DELETE FROM storage WHERE owner_type=? AND owner=?", (owner_type, owner))

    def begin_purge(self, owner_type: str, owners: Iterable[str], *, timeout: float) -> None:
        """Delete the owners' rows in a transaction left open: `commit()` or `rollback()` ends it. LbctlError
        (nothing changed) when another process holds the database for longer than `timeout`."""
        import sqlite3

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
        import sqlite3

        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "delete the stored data") from None

    def rollback(self) -> None:
        import sqlite3

        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolls back what it could not commit when the connection closes

    def close(self) -> None:
        self._db.close()


def _check_file(path: Path) -> None:
    """storage.db is a regular file or does not exist yet: a FIFO, a device or a dangling link is refused."""
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
