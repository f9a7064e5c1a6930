"""The tests and the benchmarks run from a fresh clone: they use only what the repository holds, and the plugin
packages committed in tests/plugins/ are what their sources there build to (`lbp build`, see its README)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PLUGINS = REPO / "tests" / "plugins"
OURS = {"hello", "faulty", "hostapi", "broken"}
# Where every machine has the same files: a path there is not something a checkout has and a clone has not.
SYSTEM = tuple(Path(p) for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run",
                                 "/sbin", "/sys", "/tmp", "/usr", "/var"))


# --- no test reads outside the repository ---------------------------------------------------------------------


def outside_paths(source: str, file: Path, repo: Path, system: tuple[Path, ...] = SYSTEM) -> list[str]:
    """The paths outside `repo` that the Python `source` of `file` names, as "line: path". Two kinds count:
    an expression built from where the repository is (REPO, `Path(__file__)`, `.parent`, `.parents[n]`, `/`,
    os.path.join, f-strings) that leaves it, wherever it points; and a string that names an existing file or
    directory outside the repository (absolute, or relative with `..`), other than the system's own. Words such
    as "bin" or "home" in `venv / "bin"` or `tmp_path / "home"` are not paths outside: they are not evaluated."""
    tree = ast.parse(source)
    names: dict[str, object] = {"REPO": repo, "__file__": str(file)}
    rooted = {"REPO", "__file__"}  # names whose value is computed from where the repository is
    for node in tree.body:  # module-level names bound to paths, in order (REPO = Path(__file__).parents[1], ...)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _evaluate(node.value, names)
            if value is not None:
                names[node.targets[0].id] = value
                if _uses(node.value, rooted):
                    rooted.add(node.targets[0].id)
    found: dict[int, str] = {}  # line -> the outermost such path on it (ast.walk goes outside in)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in found:
            continue
        value = _evaluate(node, names)
        if value is None:
            continue
        if _uses(node, rooted):  # built from the repository's place: it may not leave it
            path = _normal(Path(value))
            if path.is_absolute() and not _inside(path, repo):
                found[node.lineno] = str(path)
            continue
        for candidate in _named_paths(str(value), file.parent, repo):
            if candidate.exists() and not _inside(candidate, repo) and not _inside(repo, candidate) and not any(
                    _inside(candidate, root) for root in system):
                found[node.lineno] = str(value)
    return [f"{line}: {path}" for line, path in sorted(found.items())]


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _evaluate(node: ast.AST, names: dict) -> Path | str | None:
    """The value of a path expression that starts at the repository or is a constant; None when it does not."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name):
        value = names.get(node.id)
        return value if isinstance(value, (Path, str)) else None
    if isinstance(node, ast.JoinedStr):
        parts = [_evaluate(v.value if isinstance(v, ast.FormattedValue) else v, names) for v in node.values]
        return "".join(str(p) for p in parts) if all(p is not None for p in parts) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        return _normal(Path(left) / right) if isinstance(left, Path) and right is not None else None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        base = _evaluate(node.value, names)
        return base.parent if isinstance(base, Path) else None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        base, index = _evaluate(node.value.value, names), node.slice
        if isinstance(base, Path) and isinstance(index, ast.Constant) and isinstance(index.value, int):
            return base.parents[index.value] if index.value < len(base.parents) else None
        return None
    if isinstance(node, ast.Call):
        return _call(node, names)
    return None


def _call(node: ast.Call, names: dict) -> Path | str | None:
    func = ast.unparse(node.func)
    args = [_evaluate(arg, names) for arg in node.args]
    if func in ("Path", "pathlib.Path") and len(args) == 1 and args[0] is not None:
        return _normal(Path(args[0]))
    if func in ("os.path.join", "os.path.dirname", "os.path.abspath", "os.path.realpath", "os.path.normpath"):
        if not args or any(arg is None for arg in args):
            return None
        joined = _normal(Path(os.path.join(*map(str, args))))
        return joined.parent if func == "os.path.dirname" else joined
    if isinstance(node.func, ast.Attribute):
        base = _evaluate(node.func.value, names)
        if isinstance(base, Path) and node.func.attr in ("resolve", "absolute", "expanduser") and not args:
            return base
        if isinstance(base, Path) and node.func.attr == "joinpath" and all(a is not None for a in args):
            return _normal(base.joinpath(*map(str, args)))
    return None


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _named_paths(text: str, here: Path, repo: Path) -> list[Path]:
    """Where a string would point if a test opened it: absolute, `~`, or relative with `..` (from the test's
    directory or the repository, the tests' working directory)."""
    if "/" not in text or "\n" in text or len(text) > 300:
        return []
    if text.startswith(("/", "~/")):  # a file or directory in `/` or `~`, not either of those
        return [_normal(Path(text).expanduser())] if len(Path(text).parts) > 1 else []
    if ".." in Path(text).parts:
        return [_normal(here / text), _normal(repo / text)]
    return []


def python_files(*roots: Path):
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def test_no_test_or_benchmark_reads_outside_the_repository():
    offenders = [f"{path.relative_to(REPO)}:{found}" for path in python_files(REPO / "tests", REPO / "bench")
                 for found in outside_paths(path.read_text(encoding="utf-8"), path, REPO)]
    assert offenders == []


def test_the_guard_finds_paths_outside_and_not_words(tmp_path):
    clone = tmp_path / "clone" / "lbctl"  # beside it: the folders a home directory has
    (clone / "tests").mkdir(parents=True)
    for name in ("bin", "home", "src", "docs"):
        (clone.parent / name).mkdir()
    (clone.parent / "bin" / "tool").write_text("")
    source = '''
from conftest import REPO
ROOT = Path(__file__).resolve().parents[1]
DOCS = Path(__file__).resolve().parents[2] / "docs"
python = venv / "bin" / "python"
home = tmp_path / "home"
words = ["bin", "src", "home", "../x/y", "a/../../evil"]
spec = REPO.parent / "src" / "spec.md"
up = os.path.join(REPO, "..", "home")
text = f"{ROOT}/../bin/tool"
tool = "../bin/tool"
inside = REPO / "tests" / ".." / "README.md"
absolute = "%s"
''' % (clone.parent / "src")

    found = outside_paths(source, clone / "tests" / "test_x.py", clone, system=())

    outside = clone.parent
    assert found == [f"4: {outside / 'docs'}", f"8: {outside / 'src' / 'spec.md'}", f"9: {outside / 'home'}",
                     f"10: {outside / 'bin' / 'tool'}", "11: ../bin/tool", f"13: {outside / 'src'}"]


def test_a_clone_beside_bin_home_and_src_passes_the_guard(tmp_path):
    """Issue 19: cloning into ~/lbctl with ~/bin present failed the guard."""
    clone = tmp_path / "lbctl"
    for part in ("tests", "bench"):
        shutil.copytree(REPO / part, clone / part, ignore=shutil.ignore_patterns("__pycache__", "*.lbpkg"))
    for name in ("bin", "home", "src", "specs"):
        (tmp_path / name).mkdir()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(clone),
                             "tests/test_self_contained.py::test_no_test_or_benchmark_reads_outside_the_repository"],
                            cwd=clone, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the tests' own plugins -----------------------------------------------------------------------------------


def built() -> list[tuple[Path, Path]]:
    pairs = []
    for manifest in sorted(PLUGINS.glob("*/manifest.yaml")):
        meta = yaml.safe_load(manifest.read_text(encoding="utf-8"))["metadata"]
        package = PLUGINS / f"{meta['author']}-{meta['name']}-{meta['version']}.lbpkg"
        if package.exists():
            pairs.append((manifest.parent, package))
    return pairs


def test_the_tests_own_plugins_are_built_and_committed():
    assert OURS <= {source.name for source, _ in built()}


@pytest.mark.parametrize(("source", "package"), built(), ids=lambda p: p.name)
def test_a_committed_package_is_its_source_built(source: Path, package: Path):
    files = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}  # fmt: skip
    with zipfile.ZipFile(package) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    assert sorted(entries) == sorted(files)
    built_manifest = yaml.safe_load(entries.pop("manifest.yaml"))
    assert built_manifest["spec"].pop("pages") == []  # lbp build adds the (absent) pages
    assert built_manifest == yaml.safe_load(files.pop("manifest.yaml"))
    assert entries == files
