"""Read and validate .lbpkg files. Pure: no network, no environment state.

Every rule of spec §7 and lbpkg-format.md §3, §4 and §7 (requirements.txt: §7.3, as the runtime reads it);
any defect raises PackageInvalidError.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import stat
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Iterator

from lbctl import requirements
from lbctl.errors import PackageInvalidError
from lbctl.fsutil import open_regular, sha256_file
from lbctl.models import Component, PackageInfo

MAX_ENTRIES: Final = 512
MAX_ENTRY_SIZE: Final = 16 * 1024 * 1024
MAX_TOTAL_SIZE: Final = 64 * 1024 * 1024
MAX_RATIO: Final = 100
MAX_MANIFEST_SIZE: Final = 1024 * 1024
MAX_COMPONENT_FILES: Final = 256
ID_PART: Final = re.compile(r"^[A-Za-z0-9_-]+$")
VERSION_CHARS: Final = re.compile(r"^[A-Za-z0-9._+-]+$")

_HOSTILE: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    RecursionError,
)

try:
    _Loader: Any = __import__("yaml").CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = __import__("yaml").SafeLoader


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _refusing(what: str) -> Iterator[None]:
    """Turn whatever a hostile archive makes zipfile, zlib or YAML raise into PackageInvalidError."""
    try:
        yield
    except PackageInvalidError:
        raise
    except IsADirectoryError:
        raise PackageInvalidError(f"{what} is a directory, not a .lbpkg file") from None
    except zipfile.BadZipFile as exc:
        raise PackageInvalidError(f"not a valid .lbpkg (zip) file: {exc}") from None
    except _HOSTILE as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        raise PackageInvalidError(f"Cannot read {what}: {detail}") from None


def read_file(path: Path, sha256: str | None = None) -> PackageInfo:
    """Read and validate a package on disk without holding it in memory (`sha256` if already known)."""
    with _refusing(str(path)), open_regular(path) as stream, zipfile.ZipFile(stream) as archive:
        return _read_archive(archive, sha256 or sha256_file(path), os.fstat(stream.fileno()).st_size)


def read_bytes(data: bytes) -> PackageInfo:
    """Validate a package given as bytes and describe it."""
    with _refusing("the package"), zipfile.ZipFile(io.BytesIO(data)) as archive:
        return _read_archive(archive, sha256_bytes(data), len(data))


def read_config_schema(path: Path) -> tuple[dict, ...]:
    """Only the config schema of a package that was validated when it was stored (cheap)."""
    with _refusing(str(path)), open_regular(path) as stream, zipfile.ZipFile(stream) as archive:
        manifest = _yaml(_read(archive, archive.getinfo("manifest.yaml"), MAX_MANIFEST_SIZE), "manifest.yaml")
        return _check_config(manifest["spec"].get("config"))


def read_requirements(path: Path) -> tuple[str, ...]:
    """Only the requirements of a package that was validated when it was stored (cheap)."""
    with _refusing(str(path)), open_regular(path) as stream, zipfile.ZipFile(stream) as archive:
        return _requirements(archive, {i.filename: i for i in archive.infolist()})


def _read_archive(archive: zipfile.ZipFile, sha256: str, size: int) -> PackageInfo:
    files = _check_entries(archive.infolist())
    manifest = _load_manifest(archive, files)
    author, name, version, label = _check_identity(manifest)
    metadata = manifest["metadata"]
    spec = manifest.get("spec")
    _check_execution(manifest.get("execution"))
    return PackageInfo(
        author=author,
        name=name,
        version=version,
        label=label,
        description=_i18n(metadata.get("description")),
        repository=_text(metadata.get("repository")),
        components=tuple(_read_components(archive, files, spec["components"])),
        config_schema=_check_config(spec.get("config")),
        sha256=sha256,
        size=size,
        requirements=_requirements(archive, files),
    )


def _fail(message: str) -> PackageInvalidError:
    return PackageInvalidError(message)


def _check_entries(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > MAX_ENTRIES:
        raise _fail(f"Package has {len(infos)} entries; the limit is {MAX_ENTRIES}")
    files: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        _check_path(name)
        if info.flag_bits & 0x1:
            raise _fail(f"Package entry is encrypted: {name}")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _fail(f"Package contains a symbolic link: {name}")
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
            raise _fail(f"Package contains a non-regular entry: {name}")
        key = name.rstrip("/").casefold()
        if key in seen:
            raise _fail(f"Package contains a duplicate entry: {name}")
        seen.add(key)
        if info.file_size > MAX_ENTRY_SIZE:
            raise _fail(f"Package entry {name} is {info.file_size} bytes; the limit is {MAX_ENTRY_SIZE}")
        if info.file_size > max(info.compress_size, 1) * MAX_RATIO:
            raise _fail(f"Package entry {name} exceeds the compression-ratio limit of {MAX_RATIO}")
        total += info.file_size
        if total > MAX_TOTAL_SIZE:
            raise _fail(f"Package unpacks to more than {MAX_TOTAL_SIZE} bytes")
        if name.endswith("/"):
            if info.file_size:
                raise _fail(f"Package directory entry has content: {name}")
            continue
        files[name] = info
    _check_tree(files, seen)
    return files


def _check_path(name: str) -> None:
    if not name or "\x00" in name:
        raise _fail("Package contains an entry with an empty or NUL name")
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _fail(f"Package entry escapes the archive root: {name}")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise _fail(f"Package entry escapes the archive root: {name}")


def _check_tree(files: dict[str, zipfile.ZipInfo], names: set[str]) -> None:
    folded = {name.casefold() for name in files}
    for name in files:
        parts = name.casefold().split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in folded:
                raise _fail(f"Package entry {name} conflicts with the file {parent}")


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_ENTRY_SIZE) -> bytes:
    with archive.open(info) as stream:
        content = stream.read(limit + 1)
    if len(content) > limit or len(content) != info.file_size:
        raise _fail(f"Package entry {info.filename} does not have its declared size")
    return content


def _yaml(raw: bytes, where: str) -> Any:
    import yaml

    try:
        return yaml.load(raw.decode("utf-8"), Loader=_Loader)
    except UnicodeDecodeError:
        raise _fail(f"{where} is not UTF-8") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(f"{where} is not valid YAML: {first}") from None


def _load_manifest(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo]) -> dict:
    info = files.get("manifest.yaml")
    if info is None:
        raise _fail("Package has no manifest.yaml at its root")
    if info.file_size > MAX_MANIFEST_SIZE:
        raise _fail(f"manifest.yaml exceeds the {MAX_MANIFEST_SIZE}-byte limit")
    manifest = _yaml(_read(archive, info, MAX_MANIFEST_SIZE), "manifest.yaml")
    if not isinstance(manifest, dict):
        raise _fail("manifest.yaml must be a mapping")
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in manifest:
            raise _fail(f"manifest.yaml has no {key!r}")
    if manifest["kind"] != "Plugin":
        raise _fail(f"manifest.yaml kind must be 'Plugin', not {_short(manifest['kind'])}")
    if not isinstance(manifest["metadata"], dict):
        raise _fail("manifest.yaml metadata must be a mapping")
    spec = manifest["spec"]
    if not isinstance(spec, dict) or "components" not in spec:
        raise _fail("manifest.yaml spec.components is missing")
    if spec["components"] is not None and not isinstance(spec["components"], dict):
        raise _fail("manifest.yaml spec.components must be a mapping")
    return manifest


def _requirements(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo]) -> tuple[str, ...]:
    info = files.get("requirements.txt")
    if info is None:
        return ()
    with archive.open(info) as stream:
        raw = stream.read(requirements.MAX_BYTES + 1)
    return requirements.parse(raw)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_identity(manifest: dict) -> tuple[str, str, str, str]:
    metadata = manifest["metadata"]
    values = []
    for key in ("author", "name", "version"):
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "version":
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise _fail(f"manifest.yaml metadata.{key} is missing or empty")
        values.append(value.strip())
    author, name, version = values
    for key, value in (("author", author), ("name", name)):
        if not ID_PART.match(value):
            raise _fail(f"manifest.yaml metadata.{key} {value!r} may only contain letters, digits, '_' and '-'")
    if not VERSION_CHARS.match(version):
        raise _fail(f"manifest.yaml metadata.version {_short(version)} may only contain letters, digits and . _ + -")
    label = metadata.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("en_US"), str) or not label["en_US"].strip():
        raise _fail("manifest.yaml metadata.label.en_US is missing")
    return author, name, version, label["en_US"]


def _check_execution(execution: Any) -> None:
    if execution is None:
        return
    python = execution.get("python") if isinstance(execution, dict) else None
    if not isinstance(python, dict):
        raise _fail("manifest.yaml execution.python must be a mapping")
    _check_relative(python.get("path"), "execution.python.path")


def _check_relative(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise _fail(f"manifest.yaml {where} is empty")
    if path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise _fail(f"manifest.yaml {where} must be relative to the plugin")
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        raise _fail(f"manifest.yaml {where} escapes the plugin directory")
    return normal


def _check_config(config: Any) -> tuple[dict, ...]:
    if config is None:
        return ()
    if not isinstance(config, list):
        raise _fail("manifest.yaml spec.config must be a list")
    names: set[str] = set()
    for item in config:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise _fail("manifest.yaml spec.config items must be mappings with a name")
        if not isinstance(item.get("type", "string"), str):
            raise _fail(f"manifest.yaml spec.config item {item['name']!r} has an invalid type")
        if item["name"] in names:
            raise _fail(f"manifest.yaml spec.config has a duplicate item {item['name']!r}")
        names.add(item["name"])
    return tuple(config)


def _i18n(value: Any) -> str:
    if isinstance(value, dict):
        if isinstance(value.get("en_US"), str) and value["en_US"]:
            return value["en_US"]
        return next((v for v in value.values() if isinstance(v, str) and v), "")
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _component_paths(files: dict[str, zipfile.ZipInfo], group: Any) -> list[str]:
    if not isinstance(group, dict):
        return []
    paths: list[str] = []
    for entry in group.get("fromFiles") or []:
        path = entry.get("path") if isinstance(entry, dict) else entry
        if isinstance(path, str):
            paths.append(_check_relative(path, "spec.components fromFiles path"))
    for entry in group.get("fromDirs") or []:
        if not isinstance(entry, dict):
            continue
        base = _check_relative(entry.get("path"), "spec.components fromDirs path").rstrip("/")
        depth = entry.get("maxDepth", 1)
        depth = depth if isinstance(depth, int) and not isinstance(depth, bool) else 1
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            rel = name[len(base) + 1 :] if base != "." else name
            if (base == "." or name.startswith(base + "/")) and rel.count("/") < max(depth, 1):
                paths.append(name)
    return paths


def _read_components(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo], groups: Any) -> list[Component]:
    components: list[Component] = []
    seen: set[str] = set()
    for group in (groups or {}).values():
        for path in _component_paths(files, group):
            if path in seen or path not in files:
                continue
            seen.add(path)
            if len(seen) > MAX_COMPONENT_FILES:
                raise _fail(f"Package declares more than {MAX_COMPONENT_FILES} component files")
            component = _read_component(archive, files[path])
            if component is not None:
                components.append(component)
    return components


def _read_component(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Component | None:
    # The runtime skips component YAML that does not parse or lacks a key; so do we.
    try:
        doc = _yaml(_read(archive, info, MAX_MANIFEST_SIZE), info.filename)
    except PackageInvalidError:
        return None
    if not isinstance(doc, dict) or not all(k in doc for k in ("apiVersion", "kind", "metadata", "spec")):
        return None
    metadata = doc["metadata"] if isinstance(doc["metadata"], dict) else {}
    spec = doc["spec"] if isinstance(doc["spec"], dict) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not isinstance(doc["kind"], str):
        return None
    _check_component(doc, spec, info.filename)
    description = _i18n(metadata.get("description")) or _text(spec.get("llm_prompt"))
    parameters = spec.get("parameters") if isinstance(spec.get("parameters"), dict) else None
    return Component(kind=doc["kind"], name=name, description=description, parameters=parameters)


def _check_component(doc: dict, spec: dict, where: str) -> None:
    """What makes `lbp build` and the runtime refuse a component (lbpkg-format.md §4)."""
    python = (doc.get("execution") or {}).get("python") if isinstance(doc.get("execution"), dict) else None
    if isinstance(python, dict):
        _check_relative(python.get("path"), f"{where} execution.python.path")
    if doc["kind"] != "Runner":
        return
    usages = spec.get("usages")
    if not isinstance(usages, list) or not usages or not set(usages) <= {"agent", "event"}:
        raise _fail(f"Invalid Runner manifest {where}: spec.usages must list agent and/or event")
    if "event" in usages and not (isinstance(spec.get("events"), list) and spec["events"]):
        raise _fail(f"Invalid Runner manifest {where}: an event runner needs spec.events")
