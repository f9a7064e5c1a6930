"""requirements.txt is validated as the runtime validates it (runtime-control-protocol.md §12): every line the
runtime would refuse makes `install` and `inspect` exit 2, naming the line, and writes nothing."""

from __future__ import annotations

import io
import zipfile

import pytest
from pkgfactory import make_lbpkg, zip_entries

from conftest import tree_snapshot
from lbctl import lbpkg, requirements

RUNTIME = requirements.runtime_version()
MANY = "".join(f"pkg{i}\n" for i in range(1025))

REFUSED = {
    "pip option": ("requests\n-i https://mirror.example/simple\n", "line 2: pip options are not allowed"),
    "pip option after a comment": ("# pinned\n--extra-index-url https://x.example\n", "line 2: pip options"),
    "invalid PEP 508": ("requests\n\nnot a requirement!\n", "line 3 is not a valid PEP 508 requirement"),
    "inline comment": ("requests>=2  # pinned\n", "line 1 is not a valid PEP 508 requirement"),
    "VCS URL": ("git+https://github.com/a/b.git\n", "line 1 is not a valid PEP 508 requirement"),
    "too many": ("langbot-plugin\n" + MANY, "line 1026: more than 1024 requirements"),
    "too large": ("#" * (1024 * 1024) + "\n", "larger than 1048576 bytes"),
    "not UTF-8": (b"requests\nfoo\xff\n", "line 2 is not UTF-8"),
    "langbot-plugin too new": ("requests\nlangbot-plugin>=1.0\n",
                               f"line 2: langbot-plugin>=1.0 does not accept the runtime's langbot-plugin {RUNTIME}"),
    "langbot-plugin pinned to another": ("langbot-plugin==0.6.1\n", "line 1: langbot-plugin==0.6.1 does not accept"),
    "langbot-plugin direct URL": ("langbot-plugin @ https://example.com/langbot_plugin-0.7.18-py3-none-any.whl\n",
                                  "line 1: langbot-plugin cannot be a direct URL"),
}


def package(tmp_path, text: str | bytes):
    path = tmp_path / "lbctl-tests-reqs-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg("lbctl-tests", "reqs", "0.1.0", extra_files={"requirements.txt": text}))
    return path


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_install_refuses_what_the_runtime_would_refuse(case, lbctl, tmp_path):
    text, reason = REFUSED[case]
    path = package(tmp_path, text)
    before = tree_snapshot(tmp_path / "home", tmp_path / "cache")

    result = lbctl("install", path, "--json")

    assert result.exit_code == 2, result.output
    (error,) = result.json["errors"]
    assert error["code"] == "invalid_package"
    assert reason in error["message"], error
    assert "dependency_prepare_failed" in error["hint"]
    assert tree_snapshot(tmp_path / "home", tmp_path / "cache") == before
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_inspect_refuses_it_with_the_same_reason(case, lbctl, tmp_path):
    text, reason = REFUSED[case]
    path = package(tmp_path, text)
    result = lbctl("inspect", path)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: requirements.txt") and reason in result.stderr


ACCEPTED = {
    "no file": (None, ()),
    "the runtime's own sdk": ("langbot-plugin\n", ("langbot-plugin",)),
    "a range the runtime satisfies": (f"langbot-plugin>={RUNTIME}\n", (f"langbot-plugin>={RUNTIME}",)),
    "comments, blanks, extras and markers": (
        "# deps\n\n  requests[socks] >= 2.31 ; python_version >= '3.8'  \nmmh3\n",
        ('requests[socks]>=2.31; python_version >= "3.8"', "mmh3")),
    "a sdk line a marker excludes": ('langbot-plugin>=99; python_version < "3"\nhumanize\n', ("humanize",)),
    "a direct URL for another package": ("foo @ https://example.com/foo-1.0-py3-none-any.whl\n",
                                         ("foo @ https://example.com/foo-1.0-py3-none-any.whl",)),
    "exactly 1024": (MANY.split("pkg1024")[0], tuple(f"pkg{i}" for i in range(1024))),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_runtime_accepts_these_so_lbctl_does(case, lbctl, tmp_path):
    text, expected = ACCEPTED[case]
    files = {} if text is None else {"requirements.txt": text}
    path = tmp_path / "ok.lbpkg"
    data = make_lbpkg("lbctl-tests", "reqs", "0.1.0", extra_files=files)
    if text is None:
        data = _without_requirements(data)
    path.write_bytes(data)

    assert lbpkg.read_file(path).requirements == expected
    assert lbctl("inspect", path).exit_code == 0


def _without_requirements(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return zip_entries({n: archive.read(n) for n in archive.namelist() if n != "requirements.txt"})
