"""Build real, valid .lbpkg archives in memory, laid out the way `lbp build` lays them out.

File contents come from the tests' own hello plugin (`tests/plugins/hello/`), so a package made here also runs.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Final, Iterable, Mapping

import yaml

PLUGINS: Final = Path(__file__).resolve().parent / "plugins"
HELLO: Final = PLUGINS / "hello"
FIXTURE_LBPKG: Final = PLUGINS / "lbctl-tests-hello-0.1.0.lbpkg"
# A fixed timestamp makes the same arguments give the same bytes, hence the same sha256.
DATE_TIME: Final = (2025, 1, 1, 0, 0, 0)
ICON: Final = "<svg xmlns='http://www.w3.org/2000/svg'/>\n"

DEFAULT_CONFIG: Final = (
    {"name": "greeting", "type": "string", "label": {"en_US": "Greeting"},
     "description": {"en_US": "Text prefix"}, "default": "hi", "required": True},
    {"name": "count", "type": "integer", "label": {"en_US": "Count"}, "default": 1, "required": False},
    {"name": "mode", "type": "select", "label": {"en_US": "Mode"}, "default": "a", "required": True,
     "options": [{"name": "a", "label": {"en_US": "A"}}, {"name": "b", "label": {"en_US": "B"}}]},
)


def _source(relative: str) -> str:
    return (HELLO / relative).read_text(encoding="utf-8")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Component"


def manifest(author: str, name: str, version: str, *, config: Iterable[dict] | None = None,
             label: str | None = None, description: str | None = None, commands: bool = False) -> dict[str, Any]:
    """The manifest `make_lbpkg` writes, for tests that want to change it before building."""
    components: dict[str, Any] = {"Tool": {"fromDirs": [{"path": "components/tools/"}]}}
    if commands:
        components["Command"] = {"fromDirs": [{"path": "components/commands/"}]}
    return {
        "apiVersion": "v1",
        "kind": "Plugin",
        "metadata": {
            "author": author,
            "name": name,
            "repository": "",
            "version": version,
            "description": {"en_US": description or f"{name} by {author}"},
            "label": {"en_US": label or name},
            "icon": "assets/icon.svg",
        },
        "spec": {
            "config": list(DEFAULT_CONFIG if config is None else config),
            "components": components,
        },
        "execution": {"python": {"path": "main.py", "attr": "Hello"}},
    }


def _tool_yaml(tool: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Tool",
        "metadata": {"name": tool, "label": {"en_US": _camel(tool)}, "description": {"en_US": f"The {tool} tool"}},
        "spec": {
            "parameters": {"type": "object", "properties": {"text": {"type": "string", "description": "text"}},
                           "required": ["text"]},
            "llm_prompt": f"The {tool} tool",
        },
        "execution": {"python": {"path": f"{tool}.py", "attr": _camel(tool)}},
    }, sort_keys=False)


def _command_yaml(command: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Command",
        "metadata": {"name": command, "label": {"en_US": _camel(command)},
                     "description": {"en_US": f"The {command} command"}},
        "spec": None,
        "execution": {"python": {"path": f"{command}.py", "attr": _camel(command)}},
    }, sort_keys=False)


def _component_files(tools: Iterable[str], commands: Iterable[str]) -> dict[str, str]:
    tool_py = _source("components/tools/echo_tool.py")
    command_py = _source("components/commands/probe.py")
    files = {"components/__init__.py": "", "components/tools/__init__.py": ""}
    for tool in tools:
        files[f"components/tools/{tool}.yaml"] = _tool_yaml(tool)
        files[f"components/tools/{tool}.py"] = tool_py.replace("class EchoTool(", f"class {_camel(tool)}(")
    for command in commands:
        files["components/commands/__init__.py"] = ""
        files[f"components/commands/{command}.yaml"] = _command_yaml(command)
        files[f"components/commands/{command}.py"] = command_py.replace("class Probe(", f"class {_camel(command)}(")
    return files


def make_lbpkg(
    author: str,
    name: str,
    version: str,
    *,
    config: Iterable[dict] | None = None,
    tools: Iterable[str] = ("echo_tool",),
    commands: Iterable[str] = (),
    label: str | None = None,
    description: str | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> bytes:
    """A valid .lbpkg: manifest.yaml first, every entry stored, one Tool per name in `tools`.

    `config=None` gives hello's three config items (greeting, count, mode); pass `[]` for none.
    `extra_files` adds entries or replaces generated ones by name (`manifest.yaml` included).
    """
    commands = tuple(commands)
    text = manifest(author, name, version, config=config, label=label, description=description,
                    commands=bool(commands))
    files: dict[str, bytes | str] = {
        "manifest.yaml": yaml.safe_dump(text, sort_keys=False),
        "main.py": _source("main.py"),
        "requirements.txt": _source("requirements.txt"),
        "README.md": f"# {label or name}\n",
        "assets/icon.svg": ICON,
        **_component_files(tools, commands),
    }
    files.update(extra_files or {})
    return zip_entries(files)


def zip_entries(files: Mapping[str, bytes | str]) -> bytes:
    """Stored (uncompressed) zip entries in the given order, `manifest.yaml` first if present."""
    buffer = io.BytesIO()
    names = sorted(files, key=lambda n: n != "manifest.yaml")
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for entry in names:
            data = files[entry]
            info = zipfile.ZipInfo(entry, date_time=DATE_TIME)
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data.encode("utf-8") if isinstance(data, str) else data)
    return buffer.getvalue()
