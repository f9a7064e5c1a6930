"""The host's own record: identity, worker policy and installations survive its restarts (protocol §9, §16)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Final

from lbctl.fsutil import read_own_file, write_atomic

WORKER_POLICY: Final = {
    "max_cpus": 1.0, "max_memory_mb": 512, "max_pids": 128, "max_open_files": 256, "max_file_size_mb": 512,
    "max_workers": 16, "max_total_cpus": 8.0, "max_total_memory_mb": 8192, "max_installations": 10000,
    "max_concurrent_restarts": 1, "restart_failure_threshold": 8, "restart_failure_window_seconds": 30.0,
    "restart_circuit_open_seconds": 60.0, "require_hard_limits": False,
}  # fmt: skip


class HostFile:
    """HOME/runtime/host.json: the handshake values and the installation of every plugin ever applied."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = json.loads(read_own_file(path, 16 << 20))
        except FileNotFoundError:
            self.data = self._create()
            self.save()

    @staticmethod
    def _create() -> dict:
        instance = f"instance_{uuid.uuid4()}"
        return {"schema": 1, "instance_uuid": instance, "workspace_uuid": str(uuid.uuid4()),
                "placement_generation": 1, "worker_policy": WORKER_POLICY, "installations": {}}  # fmt: skip

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1).encode(), mode=0o600)

    def handshake(self) -> dict:
        instance = self.data["instance_uuid"]
        return {
            "runtime_identity": {"instance_uuid": instance, "runtime_id": f"{instance}:plugin-runtime"},
            "worker_policy": self.data["worker_policy"],
            "runtime_profile": "oss_dev",
        }

    def installation(self, plugin_id: str) -> dict:
        blank = {"uuid": str(uuid.uuid4()), "revision": 0, "digest": None, "fingerprint": None, "active": False}
        return self.data["installations"].setdefault(plugin_id, blank)

    def binding(self, plugin_id: str) -> dict:
        inst = self.data["installations"][plugin_id]
        return {
            "instance_uuid": self.data["instance_uuid"],
            "workspace_uuid": self.data["workspace_uuid"],
            "placement_generation": self.data["placement_generation"],
            "installation_uuid": inst["uuid"],
            "runtime_revision": inst["revision"],
            "artifact_digest": inst["digest"],
        }

    def plugin_of(self, installation_uuid: Any) -> str | None:
        for plugin_id, inst in self.data["installations"].items():
            if inst["uuid"] == installation_uuid:
                return plugin_id
        return None
