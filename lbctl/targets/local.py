"""The local target: the environment (state.json and its package store) and, when one is up, the runtime host.

Every plan is applied in one transaction of the environment (all steps or none); with a host up, the
changed plugins are then applied at once and waited for.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from lbctl import interrupts
from lbctl.errors import CommandInterruptedError, LbctlError, StateCorruptError
from lbctl.fsutil import sha256_file, write_atomic
from lbctl.models import PackageInfo, Record
from lbctl.targets.base import Applied, Target, with_applied

if TYPE_CHECKING:
    from lbctl.plan import Step
    from lbctl.state import State

LIVE_ACTIONS = frozenset({"uninstall", "config", "enable", "disable"})  # and every package action (plan.py)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class LocalTarget(Target):
    name = "local"
    kind = "local"
    _loaded: State | None = None

    @property
    def env(self):
        return self.ctx.env

    def _state(self) -> State:
        """The environment as this command read it (once); `apply` re-reads it under the lock."""
        if self._loaded is None:
            self._loaded = self.env.load()
        return self._loaded

    def records(self) -> dict[str, Record]:
        return self._state().plugins

    def kept_config(self) -> set[str]:
        """Uninstalled plugins whose config or stored data is still kept (what `--purge` can delete)."""
        state = self._state()
        return (set(state.config) | self.stored_data_owners()) - set(state.plugins)

    def package(self, plugin_id: str) -> PackageInfo:
        record = self.record(plugin_id)
        path = self.env.package_path(record.sha256)
        if not path.exists():
            raise StateCorruptError(f"The stored package of {plugin_id} is missing", plugin=plugin_id,
                                    hint=f"Reinstall it: `lbctl install --force {record.spec or plugin_id}`.")
        info = self.env.package_info(record.sha256)
        if info is None:
            from lbctl import lbpkg

            info = lbpkg.read_file(path)
            if info.sha256 == record.sha256:
                self.env.describe_package(info)
        return info

    def schema(self, plugin_id: str) -> tuple[dict, ...]:
        return self._stored_schema(self.record(plugin_id).sha256) or ()

    def config(self, plugin_id: str) -> dict:
        return self._state().config.get(plugin_id, {})

    def package_file(self, record: Record) -> Path | None:
        origin = Path(record.origin or "")
        return origin if _has_sha(origin, record.sha256) else self.env.package_path(record.sha256)

    def store_file(self, path: Path, data: bytes, mimetype: str) -> dict:
        import hashlib

        key = hashlib.sha256(data).hexdigest()
        target = self.env.files_dir / key
        if not target.exists():
            write_atomic(target, data, mode=0o600)
        return {"file_key": key, "mimetype": mimetype}

    def live(self) -> dict[str, str]:
        """Live plugin states from a running host, or {} when none is up (cheap: one socket probe)."""
        if not self._host_socket().exists():
            return {}
        try:
            return {p["id"]: p["state"] for p in self.host().status()["plugins"]}
        except Exception:  # noqa: BLE001 - a stale socket or a dying host just means "no live state"
            return {}

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "home": str(self.env.home), "marketplace": self.index_url,
                "host": bool(self.live()) or self._host_socket().exists()}

    def host(self):
        from lbctl.runtime.client import HostClient

        return HostClient(self.env.home, timeout=self.ctx.settings.timeout)

    def _host_socket(self) -> Path:
        from lbctl.runtime import socket_path

        return socket_path(self.env.home)

    # --- changing ----------------------------------------------------------------------------------
    def apply(self, steps: list[Step], *, start: bool = True) -> Applied:
        """All steps in one transaction of the environment: each is `done` only once it is committed. An error or
        Ctrl-C raises `with_applied` what was committed (all or nothing), then what the runtime host did."""
        applied = Applied()
        committed = False
        try:
            # A purge deletes the stored data with the same commit (Environment: together or not at all).
            with interrupts.deferred():  # a Ctrl-C meanwhile is raised when this block ends, after the commit
                with self.env.transaction() as state:
                    for step in steps:
                        if step.changes:
                            applied.warnings += self._apply_one(state, step)
                        applied.actions.append(step.action_line("done"))
                committed = True
        except BaseException as exc:
            self._loaded = None
            raise with_applied(_stopped(exc), applied if committed else _uncommitted(steps, applied, exc)) from exc
        self._loaded = None
        if start:
            try:
                self._go_live(steps, applied)
            except BaseException as exc:
                raise with_applied(_stopped(exc), applied) from exc
        return applied

    def _apply_one(self, state: State, step: Step) -> list[str]:
        from lbctl.plan import PACKAGE_ACTIONS  # imported by what changes something: reading needs no plan

        if step.action in PACKAGE_ACTIONS:
            return self._store(state, step)
        record = state.plugins.get(step.id)
        if step.action == "uninstall":
            state.plugins.pop(step.id, None)
        elif step.action == "purge":
            state.purge(step.id)
        elif step.action == "config":
            base = {} if step.replace else state.config.get(step.id, {})
            state.config[step.id] = {**base, **(step.config or {})}
        elif step.action in ("enable", "disable") and record is not None:
            state.plugins[step.id] = replace(record, enabled=bool(step.enabled))
        elif step.action in ("pin", "unpin") and record is not None:
            state.plugins[step.id] = replace(record, pinned=step.action == "pin",
                                             pin_reason=step.reason if step.action == "pin" else None)
        return []

    def _store(self, state: State, step: Step) -> list[str]:
        """Store the package and record it; returns warnings (config keys the new schema dropped)."""
        from lbctl import configschema
        from lbctl.plan import previous_fields

        cand = step.candidate
        assert cand is not None
        info, cur = cand.info, state.plugins.get(step.id)
        downloaded = cand.path.parent == self.ctx.cache.packages  # lbctl's own file: never changed in place
        (self.env.store_download if downloaded else self.env.store_package)(cand.path, info.sha256)
        state.plugins[info.id] = Record(
            id=info.id, version=info.version, source=cand.source, sha256=info.sha256, installed_at=now(),
            spec=cand.spec, origin=cand.origin, enabled=cur.enabled if cur else True,
            pinned=cur.pinned if cur else False, pin_reason=cur.pin_reason if cur else None,
            **previous_fields(cur, info.sha256),
        )
        stored = state.config.get(info.id, {})
        # The old schema only decides whether a default of the new one fills a key with no value: read it then.
        unset = any(stored.get(key) is None for key in configschema.defaults(info.config_schema))
        old_schema = self._stored_schema(cur.sha256) if cur and unset else None
        values, _added, dropped = configschema.merge_schema_change(stored, info.config_schema, old_schema=old_schema)
        state.config[info.id] = values
        return [f"{info.id}: stored config key {key!r} is not in the new schema (kept)" for key in dropped]

    def _stored_schema(self, sha256: str) -> tuple[dict, ...] | None:
        from lbctl import lbpkg

        try:
            return lbpkg.read_config_schema(self.env.package_path(sha256))
        except LbctlError:
            return None

    def _storage(self):
        from lbctl.runtime.storage import Storage

        return Storage(self.env.home / "storage.db", timeout=self.ctx.settings.lock_timeout)

    def stored_data_owners(self) -> set[str]:
        """Plugins with rows in storage.db (empty when it is missing or busy: only a hint for --purge)."""
        import sqlite3

        if not (self.env.home / "storage.db").exists():
            return set()
        try:
            storage = self._storage()
        except sqlite3.OperationalError:
            return set()
        try:
            return storage.owners("plugin")
        except sqlite3.OperationalError:
            return set()
        finally:
            storage.close()

    def _go_live(self, steps: list[Step], applied: Applied) -> None:
        """With a host up, apply the change now and wait until each plugin is running or failed."""
        from lbctl.plan import PACKAGE_ACTIONS

        ids = sorted({s.id for s in steps if s.action in LIVE_ACTIONS | PACKAGE_ACTIONS})
        if not ids or not self._host_socket().exists():
            return
        host = self.host()
        if not host.is_up():
            return
        timeout = self.ctx.settings.timeout
        states = host.reconcile_and_wait(ids, timeout=timeout)
        applied.live = [{"id": pid, **s} for pid, s in sorted(states.items())]
        for pid, s in sorted(states.items()):
            if s.get("state") in ("failed", "starting"):
                applied.warnings.append(f"{pid}: {s['state']}" + (f" ({s['error']})" if s.get("error") else ""))
                applied.errors.append({"code": "plugin_failed", "plugin": pid, "hint": f"See `lbctl logs {pid}`.",
                                       "message": f"{pid} is {s['state']}: {s.get('error') or 'no reason given'}"})


def _stopped(exc: BaseException) -> BaseException:
    """The error to report for what stopped an apply: Ctrl-C is CommandInterruptedError (exit 130)."""
    if isinstance(exc, KeyboardInterrupt):
        return CommandInterruptedError("interrupted")
    return exc


def _uncommitted(steps: list[Step], reached: Applied, exc: BaseException) -> Applied:
    """Nothing was committed: the steps the transaction reached failed with it, the others were not started."""
    from lbctl.fsutil import ENVIRONMENT_ERRNOS, unusable

    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        exc = unusable(exc)
    why = exc.message if isinstance(exc, LbctlError) else (
        "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
    failing = len(reached.actions)
    actions = [s.action_line("failed", f"not applied: the change stopped before it was committed ({why})")
               for s in steps[:failing]]
    if failing < len(steps):
        actions.append(steps[failing].action_line("failed", why))
    actions += [s.action_line("planned", "not started") for s in steps[failing + 1:]]
    return Applied(actions=actions)


def _has_sha(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False
