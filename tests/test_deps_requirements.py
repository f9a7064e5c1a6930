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
# What the runtime accepts but lbctl does not: pip would fetch, build and run it, or fill it from the environment.
UNSAFE = {
    "a direct URL": ("requests\nfoo @ https://example.com/foo-1.0-py3-none-any.whl\n",
                     "line 2: direct references (name @ URL) are not allowed"),
    "a local directory": ("x @ file:///some/dir\n", "line 1: direct references"),
    "an sdist on another host": ("x @ http://other-host/x.tar.gz\n", "line 1: direct references"),
    "a variable in a URL": ("x @ https://h.example/${LBCTL_API_KEY}/x.whl\n", "line 1: ${...} is not allowed"),
    "a variable in a marker": ('humanize; platform_release == "${LANGBOT_API_KEY}"\n', "line 1: ${...} is not allowed"),
    "a variable on the sdk's line": ("langbot-plugin>=${V}\n", "line 1: ${...} is not allowed"),
    "a name pip reads as a file": ("# local\nfoo.whl\n", "line 2: pip would read 'foo.whl' as a local path"),
    "an archive name with extras": ("Foo.Tar.GZ[x]\n", "line 1: pip would read 'Foo.Tar.GZ[x]' as a local path"),
    "a path as an arbitrary version": ("foo===./x/y\n", "line 1: pip would read 'foo===./x/y' as a local path"),
}


def package(tmp_path, text: str | bytes):
    path = tmp_path / "lbctl-tests-reqs-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg("lbctl-tests", "reqs", "0.1.0", extra_files={"requirements.txt": text}))
    return path


@pytest.mark.parametrize("case", sorted(REFUSED) + sorted(UNSAFE))
def test_install_refuses_what_the_runtime_would_refuse(case, lbctl, tmp_path):
    text, reason = {**REFUSED, **UNSAFE}[case]
    path = package(tmp_path, text)
    before = tree_snapshot(tmp_path / "home", tmp_path / "cache")

    result = lbctl("install", path, "--json")

    assert result.exit_code == 2, result.output
    (error,) = result.json["errors"]
    assert error["code"] == "invalid_package"
    assert reason in error["message"], error
    assert ("dependency_prepare_failed" if case in REFUSED else "released") in error["hint"]
    assert tree_snapshot(tmp_path / "home", tmp_path / "cache") == before
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("case", sorted(REFUSED) + sorted(UNSAFE))
def test_inspect_refuses_it_with_the_same_reason(case, lbctl, tmp_path):
    text, reason = {**REFUSED, **UNSAFE}[case]
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
    "a dollar sign without braces": ('humanize; platform_release != "$HOME"\n',
                                     ('humanize; platform_release != "$HOME"',)),
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


def test_a_marketplace_package_or_a_plugins_file_entry_is_refused_the_same_way(lbctl, tmp_path, monkeypatch):
    from fakemarket import FakeMarket

    unsafe = "x @ http://127.0.0.1:9/x.tar.gz\n"
    with FakeMarket() as market:
        market.add_raw("acme", "smuggle", "1.0.0", make_lbpkg("acme", "smuggle", "1.0.0",
                                                              extra_files={"requirements.txt": unsafe}))
        monkeypatch.setenv("LBCTL_INDEX_URL", market.url)
        from_market = lbctl("install", "acme/smuggle", "--json")
        downloaded = lbctl("download", "acme/smuggle", "-d", tmp_path / "dl", "--with-deps", "--json")
    path = package(tmp_path, unsafe)
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(f'[[plugin]]\nid = "lbctl-tests/reqs"\npath = "{path.name}"\n')
    from_file = lbctl("sync", plugins, "--json")

    for result in (from_market, downloaded, from_file):
        assert result.exit_code == 2, result.output
        assert "requirements.txt line 1: direct references (name @ URL) are not allowed" in \
            result.json["errors"][0]["message"], result.json
    assert not (tmp_path / "home").exists()
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())
