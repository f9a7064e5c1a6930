"""Dependencies point one way (docs/style.md, "Where code lives"), checked on the source with `ast`."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lbctl"
PURE = ("lbpkg.py", "state.py", "models.py", "errors.py", "requirements.py", "plan.py", "plugins_file.py")
MAY_PRINT = ("render.py", "cli/progress.py")
MAY_PRINT_DIRS = ("runtime/",)  # the plugin runtime's own logging


def modules() -> list[str]:
    """Every module as a path relative to lbctl/, e.g. 'cli/app.py'."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def module_name(rel: str) -> str:
    parts = ["lbctl", *rel[:-3].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def tree(rel: str) -> ast.Module:
    return ast.parse((PACKAGE / rel).read_text(encoding="utf-8"), filename=rel)


def imports(rel: str) -> set[str]:
    """Absolute names of everything a module imports, at any level (functions included).

    `from a.b import c` yields both `a.b` and `a.b.c`, so importing a submodule by name is seen.
    """
    package = module_name(rel) if rel.endswith("__init__.py") else module_name(rel).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree(rel)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def uses(rel: str, top: str) -> list[str]:
    return sorted(n for n in imports(rel) if n == top or n.startswith(top + "."))


def test_the_checker_sees_nested_and_relative_imports(tmp_path, monkeypatch):
    fake = tmp_path / "lbctl"
    (fake / "ops").mkdir(parents=True)
    (fake / "ops" / "x.py").write_text("def f():\n    from ..cli import app\n    import rich.table\n"
                                       "    from . import y\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    tree.cache_clear()
    try:
        assert {"lbctl.cli", "lbctl.cli.app", "rich.table", "lbctl.ops.y"} <= imports("ops/x.py")
    finally:
        tree.cache_clear()


@pytest.mark.parametrize("rel", modules())
def test_only_cli_imports_typer(rel):
    if not rel.startswith("cli/"):
        assert uses(rel, "typer") == [], f"lbctl/{rel} imports typer"
        assert uses(rel, "click") == [], f"lbctl/{rel} imports click"


@pytest.mark.parametrize("rel", modules())
def test_only_cli_and_render_import_rich(rel):
    if not (rel.startswith("cli/") or rel == "render.py"):
        assert uses(rel, "rich") == [], f"lbctl/{rel} imports rich"


@pytest.mark.parametrize("rel", [m for m in modules() if m.startswith("ops/")])
def test_ops_never_import_render_or_cli(rel):
    assert uses(rel, "lbctl.render") == [] and uses(rel, "lbctl.cli") == [], f"lbctl/{rel}: {imports(rel)}"


@pytest.mark.parametrize("rel", PURE)
def test_pure_modules_import_no_network_or_ui(rel):
    for top in ("httpx", "typer", "click", "rich"):
        assert uses(rel, top) == [], f"lbctl/{rel} imports {top}"


@pytest.mark.parametrize("rel", modules())
def test_nothing_but_the_renderer_calls_print(rel):
    if rel in MAY_PRINT or rel.startswith(MAY_PRINT_DIRS):
        return
    calls = [node.lineno for node in ast.walk(tree(rel))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert calls == [], f"lbctl/{rel} calls print() on lines {calls}"


# The layers of docs/style.md §11, top to bottom: a module imports its own layer or those below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lbctl.cli", "lbctl.__main__"),
    ("lbctl.render",),
    ("lbctl.ops",),
    ("lbctl.targets",),
    ("lbctl.resolve", "lbctl.plan", "lbctl.context"),
    ("lbctl.marketplace", "lbctl.langbot", "lbctl.http", "lbctl.runtime", "lbctl.cache", "lbctl.index",
     "lbctl.wheelhouse", "lbctl.userconfig"),
    ("lbctl.lbpkg", "lbctl.configschema", "lbctl.plugins_file", "lbctl.requirements", "lbctl.specs", "lbctl.state",
     "lbctl.settings", "lbctl.fsutil", "lbctl.tomlio", "lbctl.ids", "lbctl.interrupts"),
    ("lbctl.models", "lbctl.errors", "lbctl"),
)


def layer(module: str) -> int:
    """0 for the top layer; the longest matching prefix wins (`lbctl` itself is the package's version)."""
    found = [(len(prefix), depth) for depth, prefixes in enumerate(LAYERS) for prefix in prefixes
             if module == prefix or module.startswith(prefix + ".")]
    assert found, f"{module} is in no layer of LAYERS: place it"
    return max(found)[1]


def module_edges(rel: str) -> set[str]:
    """The lbctl modules `rel` imports, anywhere in it (TYPE_CHECKING and function bodies included).

    As import-linter counts them, `from pkg import sub` is an import of the submodule `pkg.sub`, not of `pkg`.
    """
    known = {module_name(m) for m in modules()}
    package = module_name(rel) if rel.endswith("__init__.py") else module_name(rel).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree(rel)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - (node.level - 1)] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                found.add(".".join(parts))
    found.discard(module_name(rel))
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(rel): module_edges(rel) for rel in modules()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_points_back_up_a_layer():
    upward = sorted(f"{module} -> {dep}" for module, deps in import_graph().items() for dep in deps
                    if layer(dep) < layer(module))
    assert upward == []


def imported_modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return set(rows[1:])  # the first row is the header


@pytest.mark.parametrize("code", ["import lbctl.cli", "import lbctl.__main__"])
def test_cli_entry_point_is_lazy(code):
    """`lbctl --version` must not pay for typer, rich or httpx: the entry module imports none of them."""
    if code == "import lbctl.__main__":
        code = "import sys; sys.argv = ['lbctl', '--version']\ntry:\n import lbctl.__main__\nexcept SystemExit:\n pass"
    heavy = {m for m in imported_modules(code) if m.split(".")[0] in ("typer", "click", "rich", "httpx")}
    assert heavy == set(), f"{code!r} imports {sorted(heavy)}"


def test_state_and_package_reader_do_not_pull_in_the_ui():
    loaded = imported_modules("import lbctl.state, lbctl.lbpkg, lbctl.models, lbctl.errors")
    heavy = {m for m in loaded if m.split(".")[0] in ("typer", "click", "rich", "httpx")}
    assert heavy == set(), sorted(heavy)



def test_a_client_and_a_package_without_requirements_load_neither_http2_nor_packaging(tmp_path):
    """Start-up costs measured in issue 13: httpcore's HTTP/2 support (h2 and hpack, 16 ms when the runtime extra
    installed them) and packaging's requirement grammar (~20 ms) load only when needed; h2 stays importable."""
    from pkgfactory import make_lbpkg

    package = tmp_path / "p.lbpkg"
    package.write_bytes(make_lbpkg("acme", "plain", "1.0.0", extra_files={"requirements.txt": "# none\n"}))
    code = ("import sys, importlib.util, pathlib, lbctl.marketplace as m, lbctl.lbpkg as l\n"
            "m.make_http('http://127.0.0.1:9/')\n"
            f"assert l.read_file(pathlib.Path({str(package)!r})).requirements == ()\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('h2', 'hpack', 'httpcore', 'packaging')))\n"
            "print(importlib.util.find_spec('h2') is None or bool(__import__('h2.connection')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded, importable = proc.stdout.splitlines()
    assert "'httpcore'" in loaded and "'h2" not in loaded and "'hpack" not in loaded, loaded
    assert "'packaging.requirements'" not in loaded, loaded
    assert importable == "True"


def test_a_bare_langbot_plugin_requirement_does_not_ask_for_the_runtimes_version(tmp_path):
    """A plugin that requires `langbot-plugin` without a version (lbp's template) is accepted whatever runtime is
    installed: reading it (`show`, `install`) must not load importlib.metadata (~13 ms) to look the version up;
    a line with a version still checks it (tests/test_deps_requirements.py)."""
    from pkgfactory import make_lbpkg

    package = tmp_path / "p.lbpkg"
    package.write_bytes(make_lbpkg("acme", "plain", "1.0.0",
                                   extra_files={"requirements.txt": "langbot-plugin\nrequests>=2\n"}))
    code = ("import sys, pathlib, lbctl.lbpkg as l\n"
            f"print(l.read_file(pathlib.Path({str(package)!r})).requirements)\n"
            "print('importlib.metadata' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["('langbot-plugin', 'requests>=2')", "False"]
