"""The tests and the benchmarks run from a fresh clone: they use only what the repository holds, and the plugin
packages committed in tests/plugins/ are what their sources there build to (`lbp build`, see its README)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PLUGINS = REPO / "tests" / "plugins"
OURS = {"hello", "faulty", "hostapi", "broken"}


def text_files(*roots: Path):
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                try:
                    yield path, path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue  # a built package or another binary file


def outside_references() -> tuple[str, ...]:
    """How a test would name a directory beside the repository (where a checkout may have docs or fixtures that
    a fresh clone has not): `../NAME` or `/ "NAME" /`, for each such directory there is."""
    beside = [p.name for p in REPO.parent.iterdir() if p.is_dir() and p != REPO and not p.name.startswith(".")]
    return tuple(f for name in beside for f in (f"../{name}/", f'/ "{name}" /', f"parent / {name!r}"))


def test_no_test_or_benchmark_reads_outside_the_repository():
    patterns = outside_references()
    offenders = [f"{path.relative_to(REPO)}: {pattern}" for path, text in text_files(REPO / "tests", REPO / "bench")
                 for pattern in patterns if pattern in text]  # fmt: skip
    assert offenders == []


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
