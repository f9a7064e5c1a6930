"""The package reader: the real fixture passes, every hostile package of spec §7 fails with its own reason."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURE_LBPKG, tree_snapshot
from lbctl import lbpkg, requirements
from lbctl.errors import PackageInvalidError
from pkgfactory import make_lbpkg

FIXTURE = FIXTURE_LBPKG.read_bytes()
MANIFEST = zipfile.ZipFile(io.BytesIO(FIXTURE)).read("manifest.yaml").decode()


def rezip(*, manifest: str | None = MANIFEST, extra: list[tuple] = (), drop=()) -> bytes:
    """The fixture re-packed, with its manifest replaced and entries added (name, data[, compress])."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(io.BytesIO(FIXTURE)) as src, zipfile.ZipFile(out, "w") as dst:
        warnings.simplefilter("ignore")  # duplicate names are the point of some hostile cases
        for info in src.infolist():
            if info.filename == "manifest.yaml":
                if manifest is not None:
                    dst.writestr("manifest.yaml", manifest)
            elif info.filename not in drop:
                dst.writestr(info, src.read(info))
        for name, data, *compress in extra:
            dst.writestr(zipfile.ZipInfo(name), data, compress_type=(compress or [zipfile.ZIP_STORED])[0])
    return out.getvalue()


def symlinked() -> bytes:
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    return _with_info(info, b"/etc/passwd")


def _with_info(info: zipfile.ZipInfo, data: bytes) -> bytes:
    out = io.BytesIO(rezip())
    with zipfile.ZipFile(out, "a") as dst:
        dst.writestr(info, data)
    return out.getvalue()


def declared_sizes(data: bytes, size: int) -> bytes:
    """Rewrite every central-directory entry to claim `size` bytes, compressed and not."""
    buf = bytearray(data)
    pos = buf.find(b"PK\x01\x02")
    while pos != -1:
        struct.pack_into("<II", buf, pos + 20, size, size)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def many_entries(n: int) -> bytes:
    return rezip(extra=[(f"f{i}.txt", b"x") for i in range(n)])


def manifest_with(old: str, new: str) -> bytes:
    assert old in MANIFEST
    return rezip(manifest=MANIFEST.replace(old, new, 1))


RUNNER = """apiVersion: v1
kind: Runner
metadata: {{name: r, label: {{en_US: R}}}}
spec: {spec}
execution: {{python: {{path: r.py, attr: R}}}}
"""

HOSTILE = {
    "not a zip": (b"hello, not a zip at all", "zip"),
    "truncated": (FIXTURE[: len(FIXTURE) // 2], "zip"),
    "absolute path": (rezip(extra=[("/etc/evil", b"x")]), "escapes the archive root"),
    "dot-dot": (rezip(extra=[("a/../../evil", b"x")]), "escapes the archive root"),
    "backslash": (rezip(extra=[("..\\evil", b"x")]), "escapes the archive root"),
    "symlink": (symlinked(), "symbolic link"),
    "duplicate": (rezip(extra=[("README.md", b"again")]), "duplicate"),
    "duplicate by case": (rezip(extra=[("readme.MD", b"again")]), "duplicate"),
    "too many entries": (many_entries(513), "entries"),
    "entry too large": (declared_sizes(rezip(), 16 * 1024 * 1024 + 1), "limit"),
    "total too large": (declared_sizes(many_entries(3), 15 * 1024 * 1024), "more than"),
    "compression ratio": (rezip(extra=[("zeros", b"\0" * 2_000_000, zipfile.ZIP_DEFLATED)]), "compression-ratio"),
    "no manifest": (rezip(manifest=None), "no manifest.yaml"),
    "manifest in a folder": (rezip(manifest=None, extra=[("sub/manifest.yaml", MANIFEST)]), "no manifest.yaml"),
    "invalid yaml": (rezip(manifest="apiVersion: v1\nkind: [Plugin\n"), "not valid YAML"),
    "not a mapping": (rezip(manifest="- a\n- b\n"), "mapping"),
    "kind": (manifest_with("kind: Plugin", "kind: Tool"), "kind must be 'Plugin'"),
    "no author": (manifest_with("  author: lbctl-tests\n", ""), "author"),
    "no name": (manifest_with("  name: hello\n", ""), "metadata.name"),
    "no version": (manifest_with("  version: 0.1.0\n", ""), "version"),
    "empty version": (manifest_with("  version: 0.1.0", "  version: '  '"), "version"),
    "bad author": (manifest_with("author: lbctl-tests", "author: lbctl/tests"), "author"),
    "bad name": (manifest_with("name: hello\n", "name: ../hello\n"), "name"),
    "no label": (manifest_with("  label:\n    en_US: Hello\n", "  label:\n"), "label.en_US"),
    "no en_US label": (manifest_with("    en_US: Hello\n", ""), "label.en_US"),
    "no components": (manifest_with("  components:", "  componentz:"), "spec.components"),
    "escaping python path": (manifest_with("path: main.py", "path: ../main.py"), "escapes"),
    "not utf-8": (rezip(manifest=None, extra=[("manifest.yaml", b"kind: \xff\xfe")]), "UTF-8"),
    "runner without usages": (rezip(manifest=MANIFEST.replace("    Command:\n", "    Runner:\n      fromFiles: [r.yaml]\n    Command:\n"),
                                    extra=[("r.yaml", RUNNER.format(spec="{}"))]), "spec.usages"),
    "event runner without events": (rezip(manifest=MANIFEST.replace("    Command:\n", "    Runner:\n      fromFiles: [r.yaml]\n    Command:\n"),
                                          extra=[("r.yaml", RUNNER.format(spec="{usages: [event]}"))]), "spec.events"),
    "component path escapes": (rezip(extra=[("components/tools/evil.yaml", RUNNER.replace("Runner", "Tool").format(spec="{}").replace("r.py", "../../x.py"))]), "escapes"),
}


def test_fixture_is_valid():
    info = lbpkg.read_bytes(FIXTURE)
    assert (info.id, info.version, info.label) == ("lbctl-tests/hello", "0.1.0", "Hello")
    assert info.sha256 == "f0c24c3bcc60196a8d92f81a65534f1236c237a9d880cf3208f73005fd9bcb63"
    kinds = {c.kind: c for c in info.components}
    assert kinds["Tool"].name == "echo_tool" and kinds["Tool"].parameters["required"] == ["text"]
    assert kinds["Command"].name == "probe"
    assert [item["name"] for item in info.config_schema] == ["greeting", "count", "mode"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_package_is_refused(case):
    data, reason = HOSTILE[case]
    with pytest.raises(PackageInvalidError) as exc:
        lbpkg.read_bytes(data)
    assert reason.lower() in exc.value.message.lower()
    assert "\n" not in exc.value.message


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_install_refuses_hostile_package_and_writes_nothing(case, lbctl, tmp_path):
    path = tmp_path / "bad.lbpkg"
    path.write_bytes(HOSTILE[case][0])
    before = tree_snapshot(tmp_path / "home", tmp_path / "cache")
    result = lbctl("install", path, "--json")
    assert result.exit_code == 2, result.output
    doc = result.json
    assert doc["status"] == "error" and doc["errors"][0]["code"] == "invalid_package"
    assert tree_snapshot(tmp_path / "home", tmp_path / "cache") == before
    assert not (tmp_path / "home").exists()
    assert lbctl("inspect", path).exit_code == 2


def test_refused_package_leaves_existing_environment_unchanged(lbctl, tmp_path, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    before = tree_snapshot(tmp_path / "home")
    bad = tmp_path / "bad.lbpkg"
    bad.write_bytes(HOSTILE["kind"][0])
    result = lbctl("install", fixture_lbpkg, bad, "--force")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}: manifest.yaml kind")
    assert tree_snapshot(tmp_path / "home") == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_package_invalid(data):
    with pytest.raises(PackageInvalidError):
        lbpkg.read_bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(FIXTURE) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_fixture_only_raises_package_invalid(mutations):
    buf = bytearray(FIXTURE)
    for pos, value in mutations:
        buf[pos] = value
    try:
        lbpkg.read_bytes(bytes(buf))
    except PackageInvalidError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_manifest_only_raises_package_invalid(text):
    try:
        lbpkg.read_bytes(rezip(manifest=text))
    except PackageInvalidError:
        pass


def test_valid_runner_is_read_as_a_component():
    manifest = MANIFEST.replace("    Command:\n", "    Runner:\n      fromFiles: [r.yaml]\n    Command:\n")
    info = lbpkg.read_bytes(rezip(manifest=manifest, extra=[("r.yaml", RUNNER.format(spec="{usages: [agent]}"))]))
    assert [c.name for c in info.components_by_kind()["Runner"]] == ["r"]


# requirements.txt (lbpkg-format.md §7.3); the refusals through the CLI are in test_deps_requirements.py


def test_requirements_are_read_from_the_root_file_only(tmp_path):
    path = tmp_path / "p.lbpkg"
    path.write_bytes(make_lbpkg("a", "b", "1.0.0", extra_files={"requirements.txt": "langbot-plugin\nmmh3>=4\n",
                                                                  "sub/requirements.txt": "-i http://x\n"}))
    assert lbpkg.read_file(path).requirements == ("langbot-plugin", "mmh3>=4")
    assert lbpkg.read_requirements(path) == ("langbot-plugin", "mmh3>=4")


@pytest.mark.parametrize(("line", "runtime", "accepted"), [
    ("langbot-plugin==0.6.1", "0.6.3", True),   # the runtime reads an exact 0.6 pin as a minimum
    ("langbot-plugin==0.6.4", "0.6.3", False),
    ("langbot-plugin==0.6.1", "0.7.18", False),
    ("langbot-plugin==0.6.*", "0.6.3", True),
    ("langbot-plugin>=0.7", "0.8.0b1", True),    # pre-releases of the runtime count
    ("LangBot_Plugin<0.7", "0.7.18", False),     # names compare canonicalised
])
def test_the_runtime_sdk_specifier_is_checked_as_the_runtime_checks_it(line, runtime, accepted):
    if accepted:
        assert requirements.parse(line.encode(), runtime=runtime) == (line,)
    else:
        with pytest.raises(PackageInvalidError, match="line 1: .* does not accept"):
            requirements.parse(line.encode(), runtime=runtime)


def test_requirements_size_limit_is_one_mebibyte_inclusive():
    exact = b"mmh3\n" + b"#" * (1024 * 1024 - 6) + b"\n"
    assert len(exact) == 1024 * 1024 and requirements.parse(exact) == ("mmh3",)
    with pytest.raises(PackageInvalidError, match="larger than"):
        requirements.parse(exact + b"\n")


def test_installable_requirements_leave_out_the_runtime_sdk():
    assert requirements.installable(["LangBot_Plugin>=0.7", "mmh3>=4", 'humanize; python_version > "3"']) == [
        "mmh3>=4", 'humanize; python_version > "3"']
