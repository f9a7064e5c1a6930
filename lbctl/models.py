"""Frozen data shared by every layer. No behaviour beyond small derived views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Source = Literal["marketplace", "local", "url"]
SOURCES: tuple[str, ...] = ("marketplace", "local", "url")


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    description: str = ""
    parameters: dict | None = None

    def to_json(self) -> dict:
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.kind == "Tool":
            data["parameters"] = self.parameters
        return data


@dataclass(frozen=True)
class PackageInfo:
    """What a valid .lbpkg says about itself."""

    author: str
    name: str
    version: str
    label: str
    description: str
    repository: str
    components: tuple[Component, ...]
    config_schema: tuple[dict, ...]
    sha256: str
    size: int
    requirements: tuple[str, ...] = ()  # requirements.txt lines (runtime-control-protocol.md §12)

    @property
    def id(self) -> str:
        return f"{self.author}/{self.name}"

    def components_by_kind(self) -> dict[str, list[Component]]:
        grouped: dict[str, list[Component]] = {}
        for component in self.components:
            grouped.setdefault(component.kind, []).append(component)
        return grouped

    def to_json(self) -> dict:
        """Every field, as `from_json` reads it back (the environment keeps one beside each stored package)."""
        return {**{k: getattr(self, k) for k in _TEXT_FIELDS}, "size": self.size,
                "components": [[c.kind, c.name, c.description, c.parameters] for c in self.components],
                "config_schema": list(self.config_schema), "requirements": list(self.requirements)}

    @classmethod
    def from_json(cls, data: Any) -> PackageInfo:
        """ValueError unless `data` has every field with its type (it is trusted no further than that)."""
        if not isinstance(data, dict) or not all(type(data.get(k)) is str for k in _TEXT_FIELDS):
            raise ValueError("not a package description")
        components, schema, requirements = data.get("components"), data.get("config_schema"), data.get("requirements")
        if (type(data.get("size")) is not int or not isinstance(components, list) or not isinstance(schema, list)
                or not all(isinstance(item, dict) for item in schema) or not isinstance(requirements, list)
                or not all(type(r) is str for r in requirements)):
            raise ValueError("not a package description")
        parts = [c for c in components if isinstance(c, list) and len(c) == 4 and all(type(t) is str for t in c[:3])
                 and isinstance(c[3], (dict, type(None)))]
        if len(parts) != len(components):
            raise ValueError("not a package description")
        return cls(**{k: data[k] for k in _TEXT_FIELDS}, size=data["size"],
                   components=tuple(Component(*c) for c in parts), config_schema=tuple(schema),
                   requirements=tuple(requirements))


_TEXT_FIELDS = ("author", "name", "version", "label", "description", "repository", "sha256")


@dataclass(frozen=True)
class Candidate:
    """A verified package that a spec or a plugins-file entry resolved to, before any target changes."""

    info: PackageInfo
    path: Path  # the verified package file (the user's file, or one in the download cache)
    source: str
    origin: str
    spec: str | None = None

    @property
    def id(self) -> str:
        return self.info.id


@dataclass(frozen=True)
class Record:
    """The desired state of one installed plugin, as stored in the environment."""

    id: str
    version: str
    source: str
    sha256: str
    installed_at: str
    spec: str | None = None
    origin: str | None = None
    enabled: bool = True
    previous_sha256: str | None = None
    previous_version: str | None = None
    previous_source: str | None = None
    previous_spec: str | None = None
    previous_origin: str | None = None
    pinned: bool = False
    pin_reason: str | None = None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "version": self.version,
            "source": self.source,
            "sha256": self.sha256,
            "installed_at": self.installed_at,
            "spec": self.spec,
            "origin": self.origin,
            "enabled": self.enabled,
            "previous_sha256": self.previous_sha256,
            "previous_version": self.previous_version,
            "previous_source": self.previous_source,
            "previous_spec": self.previous_spec,
            "previous_origin": self.previous_origin,
            "pinned": self.pinned,
            "pin_reason": self.pin_reason,
        }


@dataclass(frozen=True)
class Action:
    """One line of a plan or of its outcome (spec §6, `data.actions`)."""

    id: str
    action: str
    status: str
    to: str | None = None
    from_: str | None = None
    source: str | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "action": self.action,
            "from": self.from_,
            "to": self.to,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Result:
    """What every use case returns: the JSON `data`, plus warnings and failures for the envelope.

    `kind` tells the renderer which table to draw; `errors` are per-item failures of a batch.
    """

    command: str
    kind: str
    data: Any
    warnings: tuple[str, ...] = ()
    errors: tuple[dict, ...] = ()
    exit_code: int = 0
    text: str | None = None  # printed verbatim in table mode (a TOML file, a script)
    target: str | None = None  # the target a part of a fleet result is about
    parts: tuple[Result, ...] = ()  # one result per target when a command ran on several

    @property
    def status(self) -> str:
        if self.exit_code == 0:
            return "success"
        if self.parts and any(p.exit_code == 0 for p in self.parts):
            return "partial"
        return "partial" if self.errors and self.exit_code == 1 else "error"
