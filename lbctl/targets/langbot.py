"""A LangBot instance as a target, through its HTTP API (docs/langbot-http-api.md, spec §8).

LangBot's database is the source of truth for what is installed. lbctl keeps a small notes file per
instance (HOME/targets/<host>-<hash>.json, 0600) for what LangBot forgets or never says: the spec and origin
of each install, the config of an uninstalled plugin (secrets excepted) until it is reinstalled, a digest
of the secret values lbctl last sent (so a second `sync` sends nothing), and pins.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlsplit

from lbctl import configschema, interrupts
from lbctl.errors import (CommandInterruptedError, CredentialsError, LbctlError, NetworkError, NotFoundError,
                          LockedError, PackageInvalidError, PluginFailedError, PreconditionError, ProtocolError,
                          TaskFailedError)
from lbctl.fsutil import holding_lock, is_sha256, private_dir, read_own_file, write_atomic
from lbctl.models import Component, PackageInfo, Record
from lbctl.plan import PACKAGE_ACTIONS, PREVIOUS_FIELDS, previous_fields
from lbctl.targets.base import Applied, Target, with_applied

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.langbot import LangBotClient
    from lbctl.plan import Step

PARALLEL_INSTALLS = 4  # LangBot runs at most 8 user tasks per Workspace
NO_TOGGLE = "LangBot 4.11 has no API to enable or disable a plugin"
TOGGLE_HINT = "Bind plugins per pipeline in LangBot's web UI, or uninstall the plugin."
INIT_WINDOW = 30.0  # seconds LangBot itself gives a plugin to initialize
GRACE = 10.0  # seconds a stopped apply gives the steps under way to finish and be read back
NOTES_LOCK_TIMEOUT = 60.0  # seconds a write of the notes waits for another lbctl's (each holds it for a write)
POLL_EVERY = 0.2  # seconds between two listings of LangBot's plugins while steps wait for theirs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _memo:
    """functools.cached_property with a lock per instance: before Python 3.12 its lock is one for all instances,
    so the targets of a fleet would wait for each other's first requests, one at a time."""

    def __init__(self, fn):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        with obj._memo_lock:
            if self.name not in obj.__dict__:
                obj.__dict__[self.name] = self.fn(obj)
            return obj.__dict__[self.name]


class LangBotTarget(Target):
    kind = "langbot"

    def __init__(self, ctx: Context, name: str, url: str, *, api_key_env: str | None = None):
        super().__init__(ctx)
        self.name = name
        self.url = url
        self.api_key_env = api_key_env
        self._plugins: dict[str, dict] | None = None
        self._lock = threading.Lock()
        self._polled: tuple[float, dict[str, str]] | None = None
        self._poll_lock = threading.Lock()
        self._config_lock = threading.Lock()
        self._memo_lock = threading.RLock()

    @property
    def where(self) -> str:
        return f"LangBot at {self.url}" if self.name == self.url else f"{self.name} ({self.url})"

    # --- connection --------------------------------------------------------------------------------
    @_memo
    def api_key(self) -> tuple[str | None, str]:
        """The key and where it came from (never the key itself in any output); CredentialsError when the key
        found is not usable."""
        from lbctl import userconfig

        return userconfig.api_key(self.name, self.api_key_env)

    def missing_key(self) -> CredentialsError:
        """No key for this target: one line that says how to give one."""
        if self.api_key_env:
            fix = f"${self.api_key_env} is not set; export it, or run `lbctl target login {self.name}`"
        elif self.name != self.url:
            fix = f"run `lbctl target login {self.name}` (or set $LBCTL_API_KEY)"
        else:
            fix = "set $LBCTL_API_KEY, or name it (`lbctl target add NAME URL`) and run `lbctl target login NAME`"
        return CredentialsError(f"No API key for {self.where}: {fix}")

    @_memo
    def client(self) -> LangBotClient:
        key = self.api_key[0]
        if key is None:
            raise self.missing_key()
        client = self._client(key)
        if self.ctx.settings.wait_ready:
            _wait_ready(client, self.ctx.settings.wait_ready)
        return client

    def _client(self, key: str | None) -> LangBotClient:
        from lbctl.langbot import LangBotClient, make_http

        timeout = self.ctx.settings.timeout
        return LangBotClient(make_http(self.url, api_key=key, timeout=timeout), where=self.where, timeout=timeout)

    def _key_or_none(self) -> str | None:
        try:
            return self.api_key[0]
        except CredentialsError:
            return None

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
        self.__dict__.pop("info", None)
        self._plugins = None

    @_memo
    def info(self) -> dict:
        """GET /system/info, which needs no key."""
        return (self.client if self._key_or_none() else self._client(None)).info()

    @property
    def index_url(self) -> str:
        """The marketplace this LangBot installs from (its `space.url`)."""
        url = self.info.get("cloud_service_url")
        return url.rstrip("/") if isinstance(url, str) and url.startswith(("http://", "https://")) \
            else self.ctx.settings.index_url

    @_memo
    def notes(self) -> Notes:
        return Notes(self.ctx.settings.home / "targets" / _notes_name(self.url))

    # --- reading -----------------------------------------------------------------------------------
    def _containers(self) -> dict[str, dict]:
        with self._lock:
            if self._plugins is None:
                self._plugins = {}
                for container in self.client.plugins():
                    plugin_id = _container_id(container, self.where)
                    self._plugins[plugin_id] = container
            return self._plugins

    def records(self) -> dict[str, Record]:
        notes = self.notes.read()
        return {pid: _record(pid, c, notes, self.index_url) for pid, c in self._containers().items()}

    def kept_config(self) -> set[str]:
        return set(self.notes.read().get("saved_config", {}))

    def package(self, plugin_id: str) -> PackageInfo:
        """The manifest as LangBot reports it; the requirements (which LangBot does not report) from the package
        lbctl sent or resolved, kept in its cache by sha256 (none known when it is not there)."""
        from dataclasses import replace

        container = self._containers().get(plugin_id)
        if container is None:
            raise self.not_installed(plugin_id)
        info = _package(plugin_id, container, self.where)
        return replace(info, requirements=self._requirements(info.sha256))

    def _requirements(self, sha256: str) -> tuple[str, ...]:
        from lbctl import lbpkg

        if not is_sha256(sha256) or not self.ctx.cache.intact(sha256):  # LangBot's digest names a file: checked
            return ()
        try:
            return lbpkg.read_requirements(self.ctx.cache.packages / f"{sha256}.lbpkg")
        except LbctlError:
            return ()

    def config(self, plugin_id: str) -> dict:
        return self.client.config(plugin_id)

    def config_satisfied(self, plugin_id: str, values: dict) -> bool:
        """Non-secret values are compared with LangBot's; secret ones (masked there) with digests of what
        lbctl sent last."""
        if plugin_id not in self._containers():
            return False
        current = self.config(plugin_id)
        if any(configschema.mask_value({"name": k}, v) != current.get(k) for k, v in values.items()):
            return False
        notes = self.notes.read()
        sent = notes.get("config_digest", {}).get(plugin_id) or {}
        return all(sent.get(k) == _digest(v, notes.get("salt", "")) for k, v in _secret_part(values).items())

    def package_file(self, record: Record) -> Path | None:
        if not is_sha256(record.sha256):
            return None
        found = self.ctx.cache.packages / f"{record.sha256}.lbpkg"
        return found if found.is_file() else None

    def live(self) -> dict[str, str]:
        return {pid: str(c.get("status") or "-") for pid, c in self._containers().items()}

    def store_file(self, path: Path, data: bytes, mimetype: str) -> dict:
        return {"file_key": self.client.upload_config_file(path.name, data, mimetype), "mimetype": mimetype}

    def host(self) -> LangBotHost:
        return LangBotHost(self)

    def describe(self) -> dict:
        """What `target show` and `doctor --target` report. Each probe that fails says why (one problem with its
        exit code and hint); the probes behind it are "not checked" (code 0), so one cause is said once."""
        labels = (self.ctx.settings.targets.get(self.name) or {}).get("labels")
        report: dict[str, Any] = {"name": self.name, "kind": self.kind, "url": self.url,
                                  "labels": labels if isinstance(labels, dict) else {}}
        problems: dict[str, dict] = {}
        try:
            report["api_key"] = self.api_key[1]
        except CredentialsError as exc:
            report["api_key"] = f"unusable key in {getattr(exc, 'source', '?')}"
        found: dict[str, Any] = {}
        blocked = None
        for name, probe in (("reachable", lambda: self.info), ("authenticated", lambda: self.client.context()),
                            ("runtime_connected", lambda: self.client.plugins()),
                            ("capabilities", lambda: self.client.capabilities())):
            if blocked:
                problems[name] = {"message": f"not checked: {blocked}", "code": 0, "hint": None}
                continue
            try:
                found[name] = probe()
            except LbctlError as exc:
                problems[name] = {"message": exc.message, "code": int(exc.exit_code), "hint": exc.hint}
                if name in ("reachable", "authenticated"):
                    blocked = "LangBot is unreachable" if name == "reachable" else "not authenticated"
        info, context, caps = found.get("reachable") or {}, found.get("authenticated") or {}, found.get("capabilities") or {}
        operations = caps.get("operations") if isinstance(caps.get("operations"), dict) else {}
        report.update(reachable="reachable" in found, authenticated="authenticated" in found,
                      runtime_connected="runtime_connected" in found,
                      version=info.get("version"), marketplace=info.get("cloud_service_url"),
                      permissions=context.get("permissions") or [],
                      operations=sorted(k for k, v in operations.items() if k.startswith(("plugin.", "task.", "pipeline.run"))
                                        and isinstance(v, dict) and v.get("supported")))
        if problems:
            report["problems"] = problems
        return report

    # --- changing ----------------------------------------------------------------------------------
    def check_supported(self, action: str) -> None:
        if action in ("enable", "disable"):
            raise PreconditionError(f"{NO_TOGGLE} ({self.where})", hint=TOGGLE_HINT)
        if action == "runtime serve":
            raise PreconditionError(f"{self.where} drives its own plugin runtime; `runtime serve` hosts the local one",
                                    hint="Drop --target to host the local environment's plugins.")

    def apply(self, steps: list[Step], *, start: bool = True) -> Applied:
        """Each plugin's steps in order, up to PARALLEL_INSTALLS plugins at once. Every step ends `done` (LangBot
        holds it: read back when an answer left it unsure), `failed` (it does not), `unknown` (LangBot could not
        be asked) or stays `planned` (not started: Ctrl-C, or an error no plugin gets past stopped the run)."""
        for step in steps:
            self.check_supported(step.action)
        groups: dict[str, list[Step]] = {}
        for step in steps:
            groups.setdefault(step.id, []).append(step)
        run = _Run(self.ctx.settings.timeout)
        pool = ThreadPoolExecutor(max_workers=PARALLEL_INSTALLS, thread_name_prefix="lbctl-langbot")
        futures: list[Future] = []
        try:
            for group in groups.values():
                futures.append(pool.submit(self._apply_group, group, run))
            wait(futures)
        except KeyboardInterrupt:
            run.stop(CommandInterruptedError("interrupted"))
            wait(futures)  # the steps under way finish or are read back (GRACE); a second Ctrl-C is ignored
        applied = Applied()
        try:
            with interrupts.deferred():  # a Ctrl-C from here on is noted once every outcome is gathered
                pool.shutdown()
                for index, group in enumerate(groups.values()):
                    outcome = futures[index].result() if index < len(futures) else _not_started(group, run)
                    applied.actions += outcome.actions
                    applied.warnings += outcome.warnings
                    applied.errors += outcome.errors
                    applied.failures += outcome.failures
                self._plugins = None  # re-read after a change
            if not run.stopped:
                self._add_live(steps, applied)
        except KeyboardInterrupt:
            run.stop(CommandInterruptedError("interrupted"))
        if run.error is not None:
            raise with_applied(run.error, applied)
        return applied

    def _add_live(self, steps: list[Step], applied: Applied) -> None:
        try:
            states = self.live()
        except LbctlError as exc:
            applied.warnings.append(f"the changes are made, but LangBot's plugin states could not be read: {exc.message}")
            return
        touched = sorted({s.id for s in steps if s.action in PACKAGE_ACTIONS | {"config"} and s.id in states})
        if touched:
            applied.live = [{"id": pid, "state": states[pid], "error": None} for pid in touched]

    def _apply_group(self, steps: list[Step], run: _Run) -> Applied:
        """One plugin's steps, in order; after a step that failed, or whose outcome is unknown, the rest are not
        started. Runs in a worker thread: its requests finish a step under way even after Ctrl-C."""
        applied = Applied()
        purge = any(s.action == "purge" for s in steps)
        for index, step in enumerate(steps):
            if not step.changes:
                applied.actions.append(step.action_line("done"))
                continue
            if run.stopped:
                applied.actions += _not_started(steps[index:], run).actions
                break
            try:
                with despite_interrupt():  # a step under way is seen through even after Ctrl-C
                    done = self._apply_one(step, purge, run.step())
            except _NotStarted:
                applied.actions += _not_started(steps[index:], run).actions
                break
            except (LbctlError, _Unknown) as exc:
                error = exc.error if isinstance(exc, _Unknown) else exc
                if isinstance(exc, _Unknown):
                    reason = f"not known whether LangBot applied it: {error.message}"
                    applied.actions.append(step.action_line("unknown", reason))
                    applied.errors.append({**error.to_json(), "message": f"{step.id}: {reason}", "plugin": step.id})
                else:
                    applied.actions.append(step.action_line("failed", error.message))
                    applied.errors.append({**error.to_json(), "plugin": step.id})
                applied.failures.append(error)
                if _fatal(error):
                    run.stop(error)
                applied.actions += [s.action_line("planned", f"not started: {step.action} {step.id} did not succeed")
                                    for s in steps[index + 1:]]
                break
            applied.actions.append(step.action_line("done"))
            applied.warnings += done.warnings
            for problem in done.problems:
                applied.errors.append({**problem.to_json(), "plugin": step.id})
                applied.failures.append(problem)
                applied.warnings.append(f"{step.id}: {problem.message}")
                if _fatal(problem):
                    run.stop(problem)
        return applied

    def _apply_one(self, step: Step, purge: bool, run: _Run) -> _Done:
        if step.action in PACKAGE_ACTIONS:
            return self._install(step, run)
        if step.action == "uninstall":
            return self._uninstall(step, purge, run)
        if step.action == "purge":
            self.notes.change(lambda n: n.get("saved_config", {}).pop(step.id, None))
            return _Done()
        if step.action == "config":
            return self._set_config(step.id, step.config or {}, step.replace, run)
        if step.action in ("pin", "unpin"):
            pins = lambda n: n.setdefault("pins", {})  # noqa: E731
            self.notes.change(lambda n: pins(n).__setitem__(step.id, step.reason) if step.action == "pin"
                              else pins(n).pop(step.id, None))
        return _Done()

    def _install(self, step: Step, run: _Run) -> _Done:
        cand = step.candidate
        assert cand is not None
        info = cand.info
        # In lbctl's cache by sha256: `freeze` finds a local package there, `show` reads its requirements.
        self.ctx.cache.keep(cand.path, info.sha256)
        if cand.source == "marketplace":
            send = lambda: self.client.install_marketplace(info.author, info.name, info.version)  # noqa: E731
        else:
            send = lambda: self.client.install_local(cand.path)  # noqa: E731
        problem = self._change(f"install {info.id} {info.version}", info.id, send, lambda: self._holds(info), run)
        done = _Done(problems=[problem] if problem else [])
        previous = previous_fields(step.current, info.sha256)
        self._note(done, lambda n: n.setdefault("plugins", {}).__setitem__(info.id, {
            "sha256": info.sha256, "spec": cand.spec, "origin": cand.origin, "source": cand.source,
            "installed_at": _now(), "previous": previous}))
        if cand.source == "url":
            done.warnings.append(f"{info.id}: LangBot records a package from a URL as a local install; it receives "
                                 "no updates")
        if step.current is None and not run.stopped:
            self._restore_config(info.id, run.step(), done)
        return done

    def _restore_config(self, plugin_id: str, run: _Run, done: _Done) -> None:
        """Put back the config saved when the plugin was uninstalled from this target."""
        saved = self.notes.read().get("saved_config", {}).get(plugin_id)
        if saved is None:
            return
        values, hidden = saved.get("values", {}), saved.get("secrets", [])
        if values:
            try:
                restored = self._set_config(plugin_id, values, True, run)
            except _NotStarted:
                return
            except (LbctlError, _Unknown) as exc:
                error = exc.error if isinstance(exc, _Unknown) else exc
                done.problems.append(type(error)(f"its config from before its uninstall was not put back: "
                                                 f"{error.message}", plugin=plugin_id, hint=error.hint))
                return  # the saved config stays in the notes
            done.warnings += restored.warnings
            done.problems += restored.problems
            done.warnings.append(f"{plugin_id}: config restored from before its uninstall")
        self._note(done, lambda n: n.get("saved_config", {}).pop(plugin_id, None))
        if hidden:
            done.warnings.append(f"{plugin_id}: set its secret config again, LangBot never reveals it: "
                                 f"{', '.join(hidden)} (`lbctl config set {plugin_id} KEY=-`)")

    def _uninstall(self, step: Step, purge: bool, run: _Run) -> _Done:
        done = _Done()
        if not purge:
            current = self._config_now(step.id, run)
            hidden = sorted(k for k, v in current.items() if configschema.contains_mask(v))
            kept = {k: v for k, v in current.items() if k not in hidden}
            self.notes.change(lambda n: n.setdefault("saved_config", {}).__setitem__(
                step.id, {"values": kept, "secrets": hidden}))
            if hidden:
                done.warnings.append(f"{step.id}: its secret config ({', '.join(hidden)}) cannot be kept: LangBot "
                                     "never reveals it")
        try:
            problem = self._change(f"uninstall {step.id}", step.id,
                                   lambda: self.client.delete(step.id, delete_data=purge),
                                   lambda: step.id not in self._present(), run)
        except LbctlError:
            if not purge:  # still installed: nothing to keep for a reinstall
                self.notes.change(lambda n: n.get("saved_config", {}).pop(step.id, None))
            raise
        done.problems += [problem] if problem else []
        self._note(done, lambda n: (n.get("plugins", {}).pop(step.id, None),
                                    n.get("config_digest", {}).pop(step.id, None)))
        return done

    def _set_config(self, plugin_id: str, values: dict, replace: bool, run: _Run) -> _Done:
        """One whole config object, written while no other plugin request of lbctl is in flight (the client's
        gate), then waited for until the plugin is initialized again. One config change at a time, wait
        included: LangBot's runtime restarts one plugin at a time, and a plugin queued behind the restarts of
        ten others would use up its own time before its turn."""
        with self._config_lock:
            if run.stopped:
                raise _NotStarted
            return self._write_config(plugin_id, values, replace, run.step())

    def _write_config(self, plugin_id: str, values: dict, replace: bool, run: _Run) -> _Done:
        before = self._config_now(plugin_id, run)
        new = dict(values) if replace else {**before, **values}
        problem = self._change(f"set the config of {plugin_id}", plugin_id,
                               lambda: self.client.put_config(plugin_id, new),
                               lambda: self._holds_config(plugin_id, before, new, run), run, resend=True)
        done = _Done(problems=[problem] if problem else [])

        def remember(notes: dict) -> None:
            salt = notes.setdefault("salt", secrets.token_hex(16))
            notes.setdefault("config_digest", {})[plugin_id] = {k: _digest(v, salt) for k, v in _secret_part(new).items()}

        self._note(done, remember)
        stuck = None if problem or run.stopped else self._until_initialized(plugin_id, run)
        done.problems += [stuck] if stuck else []
        return done

    # --- seeing a change through -------------------------------------------------------------------
    def _change(self, what: str, plugin_id: str, send: Callable[[], int | None], held: Callable[[], bool | None],
                run: _Run, *, resend: bool = False) -> LbctlError | None:
        """Send one change and see it through. Returns when LangBot holds it (with the problem, if LangBot said
        it failed although it holds it: a plugin that did not start); raises an LbctlError when LangBot does not
        hold it, and _Unknown when LangBot cannot be asked. A transient answer (429, 500) is sent again, within
        BUSY_WINDOW for a 500 and the deadline for a 429, once reading back showed that nothing happened (or
        when it cannot tell and sending it twice does no harm: `resend`)."""
        from lbctl.langbot import BUSY_WINDOW, BusyError, refused, transient

        first, attempt, sent = 0.0, 0, False
        while True:
            try:
                task = send()
                break
            except LbctlError as exc:
                first = first or time.monotonic()
                sent = sent or not refused(exc)  # a request that may have reached LangBot went out
                state = self._read_back(held) if sent else False
                if state:
                    return None
                window = run.cutoff() if isinstance(exc, BusyError) else min(run.cutoff(), first + BUSY_WINDOW)
                if (transient(exc) and (state is False or resend) and not run.stopped
                        and time.monotonic() + _delay(attempt) < window):
                    time.sleep(_delay(attempt))
                    attempt += 1
                    continue
                if state is False:
                    raise
                raise _Unknown(exc) from None
        if task is None:
            return None
        try:
            with self.ctx.waiting(f"{self.name}: {what}"):
                finished = self.client.wait(task, deadline=run.cutoff)
        except LbctlError as exc:
            if self._read_back(held):
                return None
            raise _Unknown(exc) from None  # LangBot may still finish the task
        if finished.get("status") == "succeeded":
            return None
        error = _task_error(f"{self.where} could not {what}", self._task_reason(task), plugin_id)
        state = self._read_back(held)
        if state:
            return error
        if state is False:
            raise error
        raise _Unknown(error)

    def _read_back(self, held: Callable[[], bool | None]) -> bool | None:
        """Whether LangBot holds a change: True, False, or None when it cannot be told."""
        try:
            with despite_interrupt():
                return held()
        except LbctlError:
            return None

    def _present(self) -> dict[str, dict]:
        """LangBot's plugins now (not the list this command read first)."""
        return {_container_id(c, self.where): c for c in self.client.plugins()}

    def _holds(self, info: PackageInfo) -> bool:
        container = self._present().get(info.id)
        if container is None:
            return False
        record = _record(info.id, container, {}, "")
        return record.sha256 == info.sha256 if record.sha256 else record.version == info.version

    def _holds_config(self, plugin_id: str, before: dict, new: dict, run: _Run) -> bool | None:
        """Whether LangBot's config is `new`. LangBot shows secrets as `***`: when only a secret may have
        changed, it cannot be told (None)."""
        shown = {k: configschema.mask_value({"name": k}, v) for k, v in new.items()}
        if self._config_now(plugin_id, run) != shown:
            return False
        hidden = any(shown[k] != v for k, v in new.items())
        return None if hidden and before == shown else True

    def _config_now(self, plugin_id: str, run: _Run) -> dict:
        """The plugin's config; LangBot answers 404 while the plugin waits for its restart."""
        give_up = run.cutoff()
        while True:
            try:
                return self.client.config(plugin_id)
            except NotFoundError:
                if time.monotonic() + 0.2 > give_up:
                    raise
                time.sleep(0.2)

    def _note(self, done: _Done, edit: Callable[[dict], Any]) -> None:
        """Change the notes after LangBot made a change: a failure to write them does not undo it."""
        try:
            self.notes.change(edit)
        except (LbctlError, OSError) as exc:
            done.warnings.append(f"lbctl could not update its notes on {self.name}: "
                                 f"{exc.message if isinstance(exc, LbctlError) else exc}")

    def _until_initialized(self, plugin_id: str, run: _Run) -> LbctlError | None:
        """LangBot restarts a plugin after a config change: it is gone from the list until the runtime, which
        starts one plugin at a time, gets to it (the step's timeout), then `mounted` until its initialize()
        returns (INIT_WINDOW from then, as LangBot gives an install)."""
        since = time.monotonic()
        with self.ctx.waiting(f"{self.name}: restart {plugin_id} with its new config"):
            started, status = None, "gone"
            while time.monotonic() < run.cutoff() and not run.stopped:
                if started is not None and time.monotonic() > started + INIT_WINDOW:
                    break
                try:
                    status = self._statuses(since).get(plugin_id, "gone")
                except LbctlError as exc:
                    return exc
                if status == "initialized":
                    return None
                if status != "gone" and started is None:
                    started = time.monotonic()
                time.sleep(POLL_EVERY)
        if run.stopped:
            return None
        return PluginFailedError(f"{plugin_id} did not initialize again after its config changed (status: {status})",
                                 plugin=plugin_id, hint=f"See `lbctl --target {self.name} logs {plugin_id}`.")

    def _statuses(self, since: float) -> dict[str, str]:
        """Each plugin's status, from a listing asked for after `since` and at most POLL_EVERY ago, shared by
        the threads that wait."""
        with self._poll_lock:
            asked = time.monotonic()
            if self._polled is None or self._polled[0] < since or asked - self._polled[0] >= POLL_EVERY:
                listed = {_container_id(c, self.where): str(c.get("status") or "-") for c in self.client.plugins()}
                self._polled = (asked, listed)
            return self._polled[1]

    def _task_reason(self, task_id: int) -> str | None:
        """LangBot tells API keys only "Task execution failed"; a stored user login can read the reason."""
        from lbctl import userconfig

        login = userconfig.credentials(self.name)
        if not (isinstance(login.get("user"), str) and isinstance(login.get("password"), str)):
            return None
        try:
            return _reason_with_login(self.url, login["user"], login["password"], task_id, self.ctx.settings.timeout)
        except Exception:  # noqa: BLE001 - a better message is optional; the failure itself is reported
            return None


class _Stop:
    def __init__(self) -> None:
        self.error: LbctlError | None = None
        self.until = float("inf")
        self.lock = threading.Lock()


class _Run:
    """One `apply` and the error that stopped it (Ctrl-C, or one no plugin gets past: LangBot unreachable, the
    key refused): steps not started by then stay `planned`, those under way get GRACE seconds to finish and be
    read back. `step()` gives each step its own deadline: --timeout is how long one change may take."""

    def __init__(self, timeout: float, stop: _Stop | None = None):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._stop = stop or _Stop()

    def step(self) -> _Run:
        return _Run(self.timeout, self._stop)

    @property
    def error(self) -> LbctlError | None:
        return self._stop.error

    def stop(self, error: LbctlError) -> None:
        with self._stop.lock:
            if self._stop.error is None:
                self._stop.error, self._stop.until = error, time.monotonic() + GRACE

    @property
    def stopped(self) -> bool:
        if self._stop.error is None and interrupts.received():  # Ctrl-C reached the main thread of another apply
            self.stop(CommandInterruptedError("interrupted"))
        return self._stop.error is not None

    def cutoff(self) -> float:
        """When waiting for LangBot ends: the deadline, or GRACE after the run was stopped."""
        self.stopped  # noqa: B018 - notices a Ctrl-C
        return min(self.deadline, self._stop.until)


@dataclass
class _Done:
    """A step LangBot holds: warnings, and problems (errors that do not undo it: the plugin did not start)."""

    warnings: list[str] = field(default_factory=list)
    problems: list[LbctlError] = field(default_factory=list)


class _NotStarted(Exception):
    """The run was stopped before this step could start."""


class _Unknown(Exception):
    """LangBot may or may not hold a change, and could not be asked which."""

    def __init__(self, error: LbctlError):
        super().__init__(error.message)
        self.error = error


def despite_interrupt():
    from lbctl.http import despite_interrupt

    return despite_interrupt()


def _not_started(steps: list[Step], run: _Run) -> Applied:
    why = run.error.message if run.error is not None else "stopped"
    return Applied(actions=[s.action_line("planned", f"not started: {why}") for s in steps])


def _fatal(error: LbctlError) -> bool:
    """An error every other step would meet too (the key, the connection, LangBot's answers): start no more."""
    from lbctl.langbot import BusyError, LinkError

    return isinstance(error, (CredentialsError, ProtocolError, BusyError, LinkError))


def _delay(attempt: int) -> float:
    return min(0.2 * 2**attempt, 2.0)


class LangBotHost:
    """The live commands on a LangBot target: logs, tools, commands and run-command (through a pipeline)."""

    def __init__(self, target: LangBotTarget):
        self.target = target

    def _no_api(self, what: str) -> PreconditionError:
        return PreconditionError(f"LangBot has no API to {what} ({self.target.where})",
                                 hint="Use the local target (`lbctl runtime serve`) to try plugins directly.")

    def status(self) -> dict:
        raise self._no_api("report the runtime's status")

    def restart(self, plugin_id: str, timeout: float | None = None) -> dict:
        raise self._no_api("restart a plugin")

    def call_tool(self, plugin_id: str, tool: str, args: dict) -> Any:
        raise self._no_api("call a plugin's tool")

    def logs(self, plugin_id: str | None, lines: int) -> list[dict]:
        if plugin_id is None:
            raise self._no_api("show its runtime's own log")
        self.target.record(plugin_id)
        return [{"ts": e.get("ts"), "level": e.get("level"), "plugin": plugin_id, "text": e.get("text")}
                for e in self.target.client.logs(plugin_id, lines) if isinstance(e, dict)]

    def follow(self, plugin_id: str | None, lines: int) -> Any:
        raise self._no_api("follow a plugin's log")

    def tools(self, plugin_id: str | None = None) -> list[dict]:
        return self._components("Tool", plugin_id, with_parameters=True)

    def commands(self, plugin_id: str | None = None) -> list[dict]:
        return self._components("Command", plugin_id)

    def _components(self, kind: str, plugin_id: str | None, with_parameters: bool = False) -> list[dict]:
        ids = [plugin_id] if plugin_id else sorted(self.target.records())
        rows = []
        for pid in ids:
            for c in self.target.package(pid).components:
                if c.kind == kind:
                    row = {"plugin": pid, "name": c.name, "description": c.description}
                    rows.append({**row, "parameters": c.parameters} if with_parameters else row)
        return rows

    def run_command(self, plugin_id: str, text: str, pipeline: str | None = None) -> Any:
        if not pipeline:
            raise PreconditionError("On LangBot a command runs through a pipeline: give --pipeline UUID",
                                    hint="Pipelines are listed in LangBot's web UI.")
        self.target.record(plugin_id)
        answer = self.target.client.run_pipeline(pipeline, "!" + text.lstrip("!"))
        if answer.get("status") not in ("completed", "success", None):
            raise PluginFailedError(f"{plugin_id}: the pipeline run failed: {answer.get('error') or answer.get('status')}",
                                    plugin=plugin_id)
        replies = answer.get("replies")
        return replies if isinstance(replies, list) and replies else answer.get("reply")


# --- LangBot's records ---------------------------------------------------------------------------------


def _manifest(container: dict) -> dict:
    manifest = container.get("manifest")
    inner = manifest.get("manifest") if isinstance(manifest, dict) else None
    return inner if isinstance(inner, dict) else {}


def _container_id(container: dict, where: str) -> str:
    metadata = _manifest(container).get("metadata")
    if not isinstance(metadata, dict) or not all(isinstance(metadata.get(k), str) for k in ("author", "name")):
        raise ProtocolError(f"{where} listed a plugin without metadata.author and metadata.name")
    return f"{metadata['author']}/{metadata['name']}"


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("en_US") or next((v for v in value.values() if isinstance(v, str) and v), "")
    return value if isinstance(value, str) else ""


def _record(plugin_id: str, container: dict, notes: dict, index_url: str) -> Record:
    metadata = _manifest(container).get("metadata") or {}
    info = container.get("install_info") if isinstance(container.get("install_info"), dict) else {}
    certification = info.get("_certification") if isinstance(info.get("_certification"), dict) else {}
    sha256 = str(certification.get("artifact_digest") or "")
    source = str(container.get("install_source") or "unknown")
    note = notes.get("plugins", {}).get(plugin_id, {})
    mine = note.get("sha256") == sha256  # lbctl's note still describes what LangBot has
    previous = note.get("previous") if mine and isinstance(note.get("previous"), dict) else {}
    return Record(
        id=plugin_id, version=str(metadata.get("version") or ""), source=source, sha256=sha256,
        installed_at=note.get("installed_at") if mine else None, spec=note.get("spec") if mine else None,
        origin=note.get("origin") if mine else (index_url if source == "marketplace" else None),
        enabled=container.get("enabled") is not False, pinned=plugin_id in notes.get("pins", {}),
        pin_reason=notes.get("pins", {}).get(plugin_id),
        **{k: previous.get(k) for k in PREVIOUS_FIELDS},
    )


def _package(plugin_id: str, container: dict, where: str) -> PackageInfo:
    from lbctl import lbpkg

    manifest = _manifest(container)
    metadata = manifest.get("metadata") or {}
    spec = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else {}
    try:
        schema = lbpkg._check_config(spec.get("config"))  # noqa: SLF001 - the same checks as for a package
    except PackageInvalidError as exc:
        raise ProtocolError(f"{where} reports an invalid config schema for {plugin_id}: {exc.message}") from None
    author, name = plugin_id.split("/", 1)
    record = _record(plugin_id, container, {}, "")
    return PackageInfo(author, name, record.version, _text(metadata.get("label")), _text(metadata.get("description")),
                       _text(metadata.get("repository")), tuple(_components(container)), schema, record.sha256, 0)


def _components(container: dict) -> Iterator[Component]:
    for component in container.get("components") or []:
        manifest = _manifest(component) if isinstance(component, dict) else {}
        metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
        spec = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else {}
        if isinstance(manifest.get("kind"), str) and isinstance(metadata.get("name"), str):
            parameters = spec.get("parameters") if isinstance(spec.get("parameters"), dict) else None
            yield Component(manifest["kind"], metadata["name"], _text(metadata.get("description")), parameters)


# --- secrets, tasks ------------------------------------------------------------------------------------


def _secret_part(values: dict) -> dict:
    return {k: v for k, v in values.items() if configschema.is_secret_key(k) and v not in (None, "")
            and not configschema.contains_mask(v)}


def _digest(value: Any, salt: str) -> str:
    """A salted digest of a secret value: enough to tell "unchanged", useless for guessing the value."""
    return hashlib.sha256((salt + json.dumps(value, sort_keys=True, default=str)).encode()).hexdigest()


def _task_error(what: str, reason: str | None, plugin_id: str) -> LbctlError:
    if reason is None:
        return TaskFailedError(f"{what}: LangBot's task failed without saying why to an API key", plugin=plugin_id,
                          hint="`lbctl target login NAME --user EMAIL` lets lbctl read the reason.")
    text = reason.lower()
    message = f"{what}: {reason}"
    if "version is not available" in text or "invalid plugin version" in text:
        return NotFoundError(message, plugin=plugin_id)
    if any(word in text for word in ("archive", "manifest", "zip", "requirements")):
        return PackageInvalidError(message, plugin=plugin_id)
    if "failed to start" in text or "initializ" in text:
        return PluginFailedError(message, plugin=plugin_id)
    if "connection" in text:
        return NetworkError(message, plugin=plugin_id)
    return PreconditionError(message, plugin=plugin_id)


def _reason_with_login(url: str, user: str, password: str, task_id: int, timeout: float) -> str | None:
    from lbctl.http import read_limited
    from lbctl.langbot import API, MAX_JSON_BYTES, make_http

    with make_http(url, api_key=None, timeout=timeout) as http:
        with http.stream("POST", f"{API}/user/auth", json={"user": user, "password": password}) as answer:
            token = json.loads(read_limited(answer, MAX_JSON_BYTES))["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        with http.stream("GET", f"{API}/system/tasks/{task_id}", headers=headers) as answer:
            task = json.loads(read_limited(answer, MAX_JSON_BYTES))
    exception = ((task.get("data") or {}).get("runtime") or {}).get("exception")
    return str(exception)[:500] if exception else None


def _wait_ready(client: LangBotClient, seconds: float) -> None:
    """--wait-ready (spec §8): until LangBot answers its plugins route and has its installed plugins back
    (`LangBotClient.readiness`), so that a sync against a restarted instance sees what it holds. A plugin still
    missing INIT_WINDOW seconds after the runtime connected did not start (LangBot gives a plugin as long):
    the wait ends there and the command sees LangBot as it is."""
    deadline = time.monotonic() + seconds
    restoring_since: float | None = None
    while True:
        state, detail = client.readiness()
        now = time.monotonic()
        if state == "ready":
            return
        restoring_since = (restoring_since or now) if state == "restoring" else None
        if restoring_since is not None and now - restoring_since >= INIT_WINDOW:
            return
        if now > deadline:
            raise NetworkError(f"{client.where} was not ready after {seconds:g} s ({detail})",
                               hint="Raise --wait-ready, or check LangBot's and its plugin runtime's logs.")
        time.sleep(0.5)


# --- notes -------------------------------------------------------------------------------------------


def _notes_name(url: str) -> str:
    parts = urlsplit(url)
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in f"{parts.hostname}_{parts.port or ''}")
    return f"{host}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.json"


@dataclass
class Notes:
    path: Path

    def read(self) -> dict:
        try:
            data = json.loads(read_own_file(self.path))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # notes are a convenience: damaged ones are rebuilt
        return data if isinstance(data, dict) else {}

    def change(self, edit) -> None:
        with self._locked():
            data = self.read()
            edit(data)
            write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.path.parent)
        with holding_lock(self.path.with_suffix(".lock"), NOTES_LOCK_TIMEOUT, lambda: LockedError(
                f"lbctl's notes on this LangBot ({self.path}) are locked by another lbctl process",
                hint="Wait for it to finish and try again.")):
            yield
