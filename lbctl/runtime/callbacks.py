"""The host APIs the runtime calls back (runtime-control-protocol.md §9), for the installation that asks."""

from __future__ import annotations

import base64
import re
from typing import Any, Final, Iterator

from lbctl.runtime.hostfile import HostFile
from lbctl.runtime.protocol import HostAPIError
from lbctl.runtime.storage import Storage, StorageKeyMissing
from lbctl.state import Environment

SAFE_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class Callbacks:
    """Settings, storage and config files, each scoped to the plugin whose installation_uuid the request carries."""

    def __init__(self, env: Environment, file: HostFile, storage: Storage):
        self.env, self.file, self.storage = env, file, storage

    async def handle(self, action: str, data: dict, context: dict | None) -> dict:
        method = getattr(self, f"_api_{action}", None)
        if method is None:
            raise HostAPIError(f"NotImplementedError: host API '{action}' is not provided by lbctl")
        return method(data, context or {})

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

    def _api_get_config_file(self, data: dict, context: dict) -> dict:
        plugin_id, key = self._plugin(context), str(data.get("file_key"))
        config = self.env.load().config.get(plugin_id, {})
        # Serve only files this plugin's own config refers to (LangBot does the same).
        if not SAFE_KEY.match(key) or key not in set(_strings(config)):
            raise HostAPIError(f"PermissionError: file {key!r} is not in the config of {plugin_id}")
        try:
            return {"file_base64": base64.b64encode((self.env.files_dir / key).read_bytes()).decode()}
        except OSError:
            raise HostAPIError(f"FileNotFoundError: config file {key!r} is missing") from None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
