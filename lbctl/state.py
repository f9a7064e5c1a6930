"""The environment: desired state, plugin config, and a content-addressed package store.

Layout of the home directory:
  state.json          schema, revision, plugins (records), config (per id; kept after uninstall)  0600
  packages/<sha>.lbpkg every package in use, plus each plugin's previous one (for a rollback)
  files/              files uploaded as `file` config values
  .lock               inter-process lock (flock)
One atomic rename of state.json is the commit point of every change.
"""

from __future__ import annotations

import copy
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Iterator

from lbctl.errors import LockedError, StateCorruptError
from lbctl.fsutil import copy_atomic, sha256_file, write_atomic
from lbctl.models import Record

SCHEMA: Final = 1
STATE_FILE: Final = "state.json"


@dataclass
class State:
    plugins: dict[str, Record] = field(default_factory=dict)
    config: dict[str, dict] = field(default_factory=dict)
    revision: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            **self.extra,
            "schema": SCHEMA,
            "revision": self.revision,
            "plugins": {pid: rec.to_json() for pid, rec in sorted(self.plugins.items())},
            "config": {pid: cfg for pid, cfg in sorted(self.config.items())},
        }

    @classmethod
    def from_json(cls, data: Any, where: Path) -> State:
        if not isinstance(data, dict) or not isinstance(data.get("plugins", {}), dict):
            raise StateCorruptError(f"{where} is not an lbctl state file")
        schema = data.get("schema", SCHEMA)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise StateCorruptError(
                f"{where} has schema {schema!r}; this lbctl understands up to {SCHEMA}",
                hint="Upgrade lbctl.",
            )
        data = _migrate(data, schema)
        try:
            plugins = {pid: Record.from_json(rec) for pid, rec in data["plugins"].items()}
            config, revision = data.get("config") or {}, data.get("revision", 0)
        except (TypeError, AttributeError) as exc:
            raise StateCorruptError(f"{where} has an invalid plugin record: {exc}") from None
        if not isinstance(config, dict) or not isinstance(revision, int) or isinstance(revision, bool):
            raise StateCorruptError(f"{where} has an invalid config or revision")
        extra = {k: v for k, v in data.items() if k not in ("schema", "revision", "plugins", "config")}
        return cls(plugins, dict(config), revision, extra)


def _migrate(data: dict, schema: int) -> dict:
    # One function per schema version goes here when the format changes; schema 1 is current.
    return data


class Environment:
    def __init__(self, home: Path, *, lock_timeout: float = 10.0):
        self.home = home
        self.lock_timeout = lock_timeout

    @property
    def state_file(self) -> Path:
        return self.home / STATE_FILE

    @property
    def packages_dir(self) -> Path:
        return self.home / "packages"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    def package_path(self, sha256: str) -> Path:
        return self.packages_dir / f"{sha256}.lbpkg"

    def load(self) -> State:
        """The current state, read without the lock (state.json is only ever replaced atomically)."""
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateCorruptError(f"Cannot read {self.state_file}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise StateCorruptError(f"{self.state_file} is not valid JSON") from None
        return State.from_json(data, self.state_file)

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Lock, load, let the caller change a copy, then commit it with one atomic rename.

        An exception (Ctrl-C included) leaves state.json as it was.
        """
        with self.lock():
            before = self.load()
            state = copy.deepcopy(before)
            yield state
            if state.to_json() != before.to_json():
                state.revision = before.revision + 1
                self._save(state)
                self.collect_garbage(state)

    def _save(self, state: State) -> None:
        data = json.dumps(state.to_json(), indent=1, ensure_ascii=False).encode()
        write_atomic(self.state_file, data, mode=0o600)

    def store_package(self, source: Path, sha256: str) -> Path:
        """Store a verified package file under its sha256; a stored copy that was damaged is replaced."""
        path = self.package_path(sha256)
        try:
            intact = sha256_file(path) == sha256
        except OSError:
            intact = False
        if not intact:
            copy_atomic(source, path, sha256)
        return path

    def collect_garbage(self, state: State) -> None:
        """Remove stored packages that no record (current or previous) refers to."""
        keep = {r.sha256 for r in state.plugins.values()}
        keep |= {r.previous_sha256 for r in state.plugins.values() if r.previous_sha256}
        if not self.packages_dir.is_dir():
            return
        for path in self.packages_dir.glob("*.lbpkg"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        import fcntl

        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockedError(
                            f"The environment {self.home} is locked by another lbctl process",
                            hint="Wait for it to finish, or set LBCTL_LOCK_TIMEOUT to wait longer.",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)
