from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

from lbctl.errors import ExitCode, InvalidSpecError, NotFoundError
from lbctl.specs import Spec, marketplace_spec, parse_spec, select_version

VERSIONS = ["2.1.0rc1", "2.0.0", "1.10.0", "1.2.0", "1.2.0b2", "1.0.0", "nightly"]


@pytest.mark.parametrize(
    ("text", "version", "specifier"),
    [
        ("acme/echo", None, ""),
        ("acme/echo==1.2.3", "1.2.3", ""),
        ("acme/echo@1.2.3", "1.2.3", ""),
        ("acme/echo @ 1.2.3", "1.2.3", ""),
        ("acme/echo == 1.2.3", "1.2.3", ""),
        ("acme/echo===nightly", "nightly", ""),
        ("acme/echo@nightly", "nightly", ""),
        ("acme/echo>=1.2,<2", None, ">=1.2,<2"),
        ("acme/echo ~=1.2", None, "~=1.2"),
        ("acme/echo==1.*", None, "==1.*"),
        ("acme/echo!=1.0,>0.5", None, "!=1.0,>0.5"),
        ("  Acme_1/echo-Two  ", None, ""),
    ],
)
def test_marketplace_specs(text: str, version: str | None, specifier: str) -> None:
    spec = parse_spec(text)

    assert spec.kind == "marketplace"
    assert (spec.version, spec.specifier) == (version, specifier)
    assert spec.id == text.strip().split("=")[0].split("@")[0].split(">")[0].split("~")[0].split("!")[0].strip()
    assert spec.path is None and spec.url is None


def test_requirement_is_the_version_part() -> None:
    assert parse_spec("a/b").requirement == ""
    assert parse_spec("a/b@1.0").requirement == "==1.0"
    assert parse_spec("a/b>=1,<2").requirement == ">=1,<2"
    assert str(parse_spec(" a/b@1.0 ")) == "a/b@1.0"


def test_spec_is_frozen() -> None:
    spec = parse_spec("a/b")
    with pytest.raises(AttributeError):
        spec.author = "c"  # type: ignore[misc]


@pytest.mark.parametrize("text", ["./x.lbpkg", "/abs/dir/x.lbpkg", "x.LBPKG", "missing/dir/plugin.lbpkg"])
def test_local_specs_by_suffix(text: str) -> None:
    spec = parse_spec(text)

    assert spec.kind == "local"
    assert spec.path == Path(text)
    assert spec.id == ""


def test_local_spec_for_an_existing_file_without_suffix(tmp_path: Path) -> None:
    package = tmp_path / "download.zip"
    package.write_bytes(b"")

    assert parse_spec(str(package)) == Spec("local", str(package), path=package)


def test_existing_path_wins_over_a_marketplace_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "echo").write_bytes(b"")
    monkeypatch.chdir(tmp_path)

    assert parse_spec("acme/echo").kind == "local"


def test_local_path_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    assert parse_spec("~/p.lbpkg").path == tmp_path / "p.lbpkg"


def test_unknown_home_of_a_user_is_left_as_is() -> None:
    assert parse_spec("~nosuchuser0x/p.lbpkg").path == Path("~nosuchuser0x/p.lbpkg")


@pytest.mark.parametrize("text", ["https://example.com/p.lbpkg", "http://127.0.0.1:8080/a?b=c", "HTTPS://x.org/p"])
def test_url_specs(text: str) -> None:
    spec = parse_spec(text)

    assert (spec.kind, spec.url, spec.id) == ("url", text, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "Empty spec"),
        ("   ", "Empty spec"),
        ("echo", "expected author/name"),
        ("acme/", "name is empty"),
        ("/echo", "author is empty"),
        ("ac me/echo", "author 'ac me' may only contain"),
        ("acme/echo/extra", "exactly one '/'"),
        ("acme/echo.x", "is not a version specifier"),
        ("acme/echo==", "is not a version specifier"),
        ("acme/echo@", "version is empty"),
        ("acme/echo@1 .0", "may only contain letters"),
        ("acme/echo==1.0$", "may only contain letters"),
        ("acme/echo>=1.0 extra", "is not a version specifier"),
        ("acme/echo>>1", "is not a version specifier"),
        ("ftp://example.com/p.lbpkg", "unsupported URL scheme 'ftp'"),
        ("file:///tmp/p.lbpkg", "unsupported URL scheme 'file'"),
        ("https:///p.lbpkg", "has no host"),
    ],
)
def test_invalid_specs(text: str, reason: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(text)

    assert info.value.exit_code == ExitCode.BAD_INPUT == 2
    assert reason in info.value.message
    assert "\n" not in info.value.message


def test_marketplace_spec_from_a_plugins_file_entry() -> None:
    assert marketplace_spec("a/b").requirement == ""
    assert marketplace_spec("a/b", "1.2.3").version == "1.2.3"
    assert marketplace_spec("a/b", "==1.2.3").version == "1.2.3"
    assert marketplace_spec("a/b", ">=1, <2").specifier == ">=1, <2"
    with pytest.raises(InvalidSpecError):
        marketplace_spec("a/b/c")


@pytest.mark.parametrize(
    ("text", "pre", "chosen"),
    [
        ("a/b", False, "2.0.0"),
        ("a/b", True, "2.1.0rc1"),
        ("a/b<2", False, "1.10.0"),
        ("a/b>=1.1,<1.5", False, "1.2.0"),
        ("a/b==1.2.0", False, "1.2.0"),
        ("a/b@1.2.0b2", False, "1.2.0b2"),
        ("a/b==2.1.0rc1", False, "2.1.0rc1"),
        ("a/b>=2.1.0rc1", False, "2.1.0rc1"),
        ("a/b~=1.0", False, "1.10.0"),
        ("a/b==1.*", False, "1.10.0"),
        ("a/b@nightly", False, "nightly"),
        ("a/b===nightly", False, "nightly"),
        ("a/b==2", False, "2.0.0"),
    ],
)
def test_select_version(text: str, pre: bool, chosen: str) -> None:
    assert select_version(VERSIONS, parse_spec(text), pre) == chosen


def test_select_version_does_not_trust_the_served_order() -> None:
    assert select_version(["1.0.0", "1.10.0", "1.9.0"], parse_spec("a/b"), False) == "1.10.0"


def test_exact_string_wins_over_an_equal_version() -> None:
    assert select_version(["1.0", "1.0.0"], parse_spec("a/b==1.0.0"), False) == "1.0.0"
    assert select_version(["1.0", "1.0.0"], parse_spec("a/b"), False) == "1.0"


def test_unparsable_versions_only_match_exactly() -> None:
    assert select_version(["nightly", "1.0"], parse_spec("a/b"), True) == "1.0"
    with pytest.raises(NotFoundError):
        select_version(["nightly", "latest"], parse_spec("a/b"), True)


def test_no_match_names_the_plugin_and_the_spec() -> None:
    with pytest.raises(NotFoundError) as info:
        select_version(VERSIONS, parse_spec("a/b>=3"), False)

    error = info.value
    assert error.exit_code == ExitCode.NOT_FOUND == 5
    assert error.plugin == "a/b"
    assert "a/b" in error.message and ">=3" in error.message
    assert error.hint and "2.1.0rc1, 2.0.0" in error.hint and "lbctl market show a/b --versions" in error.hint


def test_no_match_suggests_pre_when_a_pre_release_would_match() -> None:
    with pytest.raises(NotFoundError) as info:
        select_version(["2.0b1", "1.0"], parse_spec("a/b>=1.5"), False)

    assert info.value.hint is not None and "--pre" in info.value.hint and "2.0b1" in info.value.hint


def test_only_pre_releases_without_pre() -> None:
    with pytest.raises(NotFoundError) as info:
        select_version(["2.0b1"], parse_spec("a/b"), False)

    assert "final release" in info.value.message
    assert info.value.hint is not None and "--pre" in info.value.hint


def test_no_versions_at_all() -> None:
    with pytest.raises(NotFoundError, match="a/b has no versions"):
        select_version([], parse_spec("a/b"), True)


def test_exact_version_missing() -> None:
    with pytest.raises(NotFoundError, match="'==9.9'"):
        select_version(VERSIONS, parse_spec("a/b@9.9"), True)


def test_importing_specs_does_not_import_packaging() -> None:
    code = "import sys, lbctl.specs; print('packaging' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "False"


ID = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
VERSION = st.from_regex(r"[A-Za-z0-9._+-]{1,20}", fullmatch=True)


@given(ID, ID, VERSION, st.sampled_from(["==", "@", "===", " @ "]))
def test_exact_specs_round_trip(author: str, name: str, version: str, operator: str) -> None:
    spec = parse_spec(f"{author}/{name}{operator}{version}")

    assert (spec.kind, spec.author, spec.name, spec.version) == ("marketplace", author, name, version)
    assert parse_spec(f"{spec.id}{spec.requirement}") == Spec("marketplace", f"{spec.id}{spec.requirement}",
                                                              author=author, name=name, version=version)


@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_is_an_invalid_spec(text: str) -> None:
    try:
        spec = parse_spec(text)
    except InvalidSpecError as exc:
        assert "\n" not in exc.message.replace(repr(text), "")
    else:
        assert spec.kind in ("marketplace", "local", "url")


def _parsable(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


PEP440 = st.builds(
    lambda parts, pre: ".".join(map(str, parts)) + pre,
    st.lists(st.integers(0, 30), min_size=1, max_size=3),
    st.sampled_from(["", "", "a1", "b2", "rc1", ".post1", ".dev0"]),
)


@given(st.lists(PEP440 | VERSION, min_size=1, max_size=15), st.booleans())
def test_select_version_picks_the_newest_allowed(versions: list[str], pre: bool) -> None:
    allowed = [v for v in versions if (p := _parsable(v)) is not None and (pre or not p.is_prerelease)]
    try:
        chosen = select_version(versions, parse_spec("a/b"), pre)
    except NotFoundError:
        assert not allowed
        return
    assert chosen in allowed
    assert all(Version(v) <= Version(chosen) for v in allowed)
