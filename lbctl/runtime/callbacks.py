"""The host APIs the runtime calls back (runtime-control-protocol.md §9), for the installation that asks."""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Final, Iterator

from lbctl.errors import LbctlError
from lbctl.fsutil import read_own_file
from lbctl.runtime import hostapis
from lbctl.runtime.hostfile import HostFile
from lbctl.runtime.protocol import HostAPIError
from lbctl.runtime.storage import Storage, StorageKeyMissing
from lbctl.state import Environment

SAFE_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


@dataclass
class Query:
    """A tool call or command lbctl sent: what the plugin replies to it and the variables it sets."""

    id: int
    plugin: str
    output: list = field(default_factory=list)
    variables: dict = field(default_factory=dict)


class Callbacks:
    """Settings, storage and config files, each scoped to the plugin whose installation_uuid the request carries;
    the query APIs for lbctl's own calls; every other host API as hostapis.py says."""

    def __init__(self, env: Environment, file: HostFile, storage: Storage):
        self.env, self.file, self.storage = env, file, storage
        self.queries: dict[int, Query] = {}
        self._query_ids = itertools.count(1)

    async def handle(self, action: str, data: dict, context: dict | None) -> dict:
        method = getattr(self, f"_api_{action}", None)
        if method is None:
            return hostapis.answer(action, data)
        return method(data, context or {})

    @contextlib.contextmanager
    def query(self, plugin_id: str) -> Iterator[Query]:
        """A query id for one call to `plugin_id`, valid until the call returns."""
        query = Query(next(self._query_ids), plugin_id)
        self.queries[query.id] = query
        try:
            yield query
        finally:
            del self.queries[query.id]

    def _plugin(self, context: dict) -> str:
        plugin_id = self.file.plugin_of(context.get("installation_uuid"))
        if plugin_id is None:
            raise HostAPIError("PermissionError: the request carries no installation of this host")
        return plugin_id

    def _owner(self, data: dict, context: dict) -> tuple[str, str]:
        plugin_id = self._plugin(context)
        if data.get("owner_type") == "workspace":
            return "workspace", self.file.data["workspace_uuid"]
        return "plugin", plugin_id

    def _api_get_plugin_settings(self, data: dict, context: dict) -> dict:
        plugin_id = self._plugin(context)
        if f"{data.get('plugin_author')}/{data.get('plugin_name')}" != plugin_id:
            raise HostAPIError("PermissionError: plugin identity does not match its installation")
        state = self.env.load()
        record = state.plugins.get(plugin_id)
        if record is None:
            raise HostAPIError(f"LookupError: {plugin_id} is not installed")
        info = {k: v for k, v in (("spec", record.spec), ("origin", record.origin)) if v}
        return {
            "enabled": record.enabled, "priority": 0, "plugin_config": state.config.get(plugin_id, {}),
            "install_source": record.source, "install_info": info,
            "installation_uuid": context["installation_uuid"],
            "runtime_revision": context.get("runtime_revision"), "artifact_digest": context.get("artifact_digest"),
        }  # fmt: skip

    def _api_initialize_plugin_settings(self, data: dict, context: dict) -> dict:
        return {}  # only the legacy install path sends it; provenance lives in the environment

    def _api_set_binary_storage(self, data: dict, context: dict) -> dict:
        try:
            value = base64.b64decode(data.get("value_base64", ""), validate=True)
            self.storage.set(*self._owner(data, context), str(data["key"]), value)
        except (ValueError, KeyError) as exc:
            raise HostAPIError(f"ValueError: {exc}") from None
        return {}

    def _api_get_binary_storage(self, data: dict, context: dict) -> dict:
        key = str(data.get("key"))
        try:
            value = self.storage.get(*self._owner(data, context), key)
        except StorageKeyMissing:
            raise HostAPIError(f"ValueError: Storage with key {key} not found") from None
        return {"value_base64": base64.b64encode(value).decode()}

    def _api_get_binary_storage_keys(self, data: dict, context: dict) -> dict:
        return {"keys": self.storage.keys(*self._owner(data, context))}

    def _api_delete_binary_storage(self, data: dict, context: dict) -> dict:
        self.storage.delete(*self._owner(data, context), str(data.get("key")))
        return {}

    def _query(self, data: dict, context: dict) -> Query:
        query = self.queries.get(data.get("query_id"))
        if query is None or query.plugin != self._plugin(context):
            raise HostAPIError(f"LookupError: Query with query_id {data.get('query_id')} not found")
        return query

    def _api_reply_message(self, data: dict, context: dict) -> dict:
        self._query(data, context).output.append({"text": chain_text(data.get("message_chain") or [])})
        return {}

    def _api_get_bot_uuid(self, data: dict, context: dict) -> dict:
        self._query(data, context)
        return {"bot_uuid": None}  # lbctl's calls come from no bot

    def _api_set_query_var(self, data: dict, context: dict) -> dict:
        self._query(data, context).variables[str(data.get("key"))] = data.get("value")
        return {}

    def _api_get_query_var(self, data: dict, context: dict) -> dict:
        variables, key = self._query(data, context).variables, str(data.get("key"))
        if key not in variables:
            raise HostAPIError(f"KeyError: query variable {key!r} is not set")
        return {"value": variables[key]}

    def _api_get_query_vars(self, data: dict, context: dict) -> dict:
        return {"vars": dict(self._query(data, context).variables)}

    def _api_create_new_conversation(self, data: dict, context: dict) -> dict:
        self._query(data, context)
        return {}  # lbctl keeps no conversations, so every call already starts a new one

    def _api_get_config_file(self, data: dict, context: dict) -> dict:
        plugin_id, key = self._plugin(context), str(data.get("file_key"))
        config = self.env.load().config.get(plugin_id, {})
        # Serve only files this plugin's own config refers to (LangBot does the same).
        if not SAFE_KEY.match(key) or key not in set(_strings(config)):
            raise HostAPIError(f"PermissionError: file {key!r} is not in the config of {plugin_id}")
        try:
            return {"file_base64": base64.b64encode(read_own_file(self.env.files_dir / key, 64 << 20)).decode()}
        except (OSError, LbctlError):
            raise HostAPIError(f"FileNotFoundError: config file {key!r} is missing") from None


def chain_text(chain: list) -> str:
    """A message chain as text: its Plain parts, and the kind of every other part in brackets."""
    parts = [c if isinstance(c, dict) else {} for c in chain]
    return "".join(str(c.get("text", "")) if c.get("type") == "Plain" else f"[{c.get('type', '?')}]" for c in parts)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
