"""The small interface every target implements: the local environment and a LangBot instance.

Use cases read records and config, build a plan (lbctl.plan) and hand it to `apply`; nothing above this
layer asks which kind of target it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbctl.errors import LbctlError, NotInstalledError
from lbctl.models import Action, PackageInfo, Record

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.plan import Step
    from lbctl.resolve import Resolver


@dataclass
class Applied:
    """What `apply` did: one action line per step, plus warnings, per-plugin errors and live states.

    Each line's status is what the target holds: `done` (it happened), `failed` (it did not), `unknown` (the
    target could not be asked whether it did), `planned` (not started) or `skipped` (nothing to do)."""

    actions: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    live: list[dict] | None = None
    failures: list[LbctlError] = field(default_factory=list)


def with_applied(error: BaseException, applied: Applied) -> BaseException:
    """`error`, carrying what `apply` had done when it stopped (Ctrl-C, or an error no step gets past): the use
    case reports those actions with the error (common.apply), never `data: null` after a partial change."""
    error.applied = applied  # type: ignore[attr-defined]
    return error


class Target:
    name: str = "local"
    kind: str = "local"

    def __init__(self, ctx: Context):
        self.ctx = ctx

    # --- reading -----------------------------------------------------------------------------------
    def records(self) -> dict[str, Record]:
        raise NotImplementedError

    def record(self, plugin_id: str) -> Record:
        from lbctl.ids import expand

        records = self.records()
        record = records.get(expand(plugin_id, records))
        if record is None:
            raise self.not_installed(plugin_id)
        return record

    def expand(self, ids: list[str]) -> list[str]:
        """Ids as typed: a bare `name` that one installed plugin has becomes its `author/name`."""
        from lbctl.ids import expand

        records = self.records()
        return [expand(pid, records) for pid in ids]

    def not_installed(self, plugin_id: str) -> NotInstalledError:
        from lbctl.ids import suggestion

        hint = suggestion(plugin_id, self.records()) or "Run `lbctl list` to see what is."
        where = "" if self.kind == "local" else f" on {self.name}"
        return NotInstalledError(f"{plugin_id} is not installed{where}", plugin=plugin_id, hint=hint)

    def kept_config(self) -> set[str]:
        """Ids whose config is kept although the plugin was uninstalled."""
        return set()

    def package(self, plugin_id: str) -> PackageInfo:
        """The installed plugin's manifest: label, components, config schema."""
        raise NotImplementedError

    def schema(self, plugin_id: str) -> tuple[dict, ...]:
        """The installed plugin's config schema (`spec.config`)."""
        return self.package(plugin_id).config_schema

    def config(self, plugin_id: str) -> dict:
        raise NotImplementedError

    def config_satisfied(self, plugin_id: str, values: dict) -> bool:
        """Whether the stored config already holds every key of `values` with that value."""
        current = self.config(plugin_id)
        return all(current.get(k) == v for k, v in values.items())

    def package_file(self, record: Record) -> Path | None:
        """A file with the installed package's bytes, for `freeze` of local packages, or None."""
        return None

    def live(self) -> dict[str, str]:
        """Live state per plugin id ({} when nothing runs)."""
        return {}

    def store_file(self, path: Path, data: bytes, mimetype: str) -> dict:
        """Keep a file for a `file` config value; returns the value to store ({file_key, mimetype})."""
        raise NotImplementedError

    @property
    def resolver(self) -> Resolver:
        """Resolves specs against the marketplace this target installs from."""
        from lbctl.resolve import Resolver

        return Resolver(self.ctx, self.index_url)

    @property
    def index_url(self) -> str:
        return self.ctx.settings.index_url

    def describe(self) -> dict:
        """What `target show` reports about this target."""
        raise NotImplementedError

    def host(self) -> Any:
        """The live side: status, logs, tools, commands, call_tool, run_command, restart."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of connections and cached answers: the command is done with this target."""

    # --- changing ----------------------------------------------------------------------------------
    def check_supported(self, action: str) -> None:
        """Raise PreconditionError when this target has no way to carry out `action`."""

    def apply(self, steps: list[Step], *, start: bool = True) -> Applied:
        """Carry out the steps. When it stops half way it raises an LbctlError `with_applied` what it did;
        Ctrl-C becomes CommandInterruptedError (exit 130) the same way."""
        raise NotImplementedError
