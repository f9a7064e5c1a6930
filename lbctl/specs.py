"""Parse what the user asks for (spec §2) and pick the marketplace version that satisfies it.

`packaging` is imported inside the functions that need it, so `import lbctl.specs` stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

from lbctl.errors import InvalidSpecError, NotFoundError

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

SpecKind = Literal["marketplace", "local", "url"]

ID_PART: Final = re.compile(r"^[A-Za-z0-9_-]+$")
VERSION_CHARS: Final = re.compile(r"^[A-Za-z0-9._+-]+$")
FORMS: Final = "expected author/name[==VERSION|@VERSION|SPECIFIERS], a .lbpkg file or an http(s) URL"

_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MARKETPLACE: Final = re.compile(r"^(?P<author>[^/]*)/(?P<name>[A-Za-z0-9_-]*)(?P<rest>.*)$", re.DOTALL)
_EXACT: Final = re.compile(r"^={2,3}\s*(?P<version>[^\s,;*=<>!~]+)$")


@dataclass(frozen=True)
class Spec:
    """One parsed spec. Marketplace specs carry either `version` (exact) or `specifier` (or neither)."""

    kind: SpecKind
    raw: str
    author: str = ""
    name: str = ""
    version: str | None = None
    specifier: str = ""
    path: Path | None = None
    url: str | None = None

    @property
    def id(self) -> str:
        return f"{self.author}/{self.name}" if self.kind == "marketplace" else ""

    @property
    def requirement(self) -> str:
        """The version part: `""` (newest), `"==1.2.3"` (exact) or a specifier set such as `">=1.2,<2"`."""
        return f"=={self.version}" if self.version is not None else self.specifier

    def __str__(self) -> str:
        return self.raw


def parse_spec(text: str) -> Spec:
    """Parse a spec of `install`, `download` or `update --to`; raises InvalidSpecError."""
    raw = text.strip()
    if not raw:
        raise InvalidSpecError(f"Empty spec: {FORMS}")
    if _SCHEME.match(raw):
        return _url_spec(raw)
    if raw.lower().endswith(".lbpkg") or _exists(raw):
        return Spec("local", raw, path=_expand(raw))
    return _marketplace_spec(raw)


def marketplace_spec(plugin_id: str, requirement: str = "") -> Spec:
    """A marketplace spec from an id and a version requirement (as in a plugins file).

    A bare version (`1.2.3`) means exactly that version.
    """
    requirement = requirement.strip()
    if requirement[:1].isalnum():
        requirement = f"=={requirement}"
    return _marketplace_spec(f"{plugin_id.strip()}{requirement}")


def _expand(raw: str) -> Path:
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # `~user` for a user that does not exist
        return Path(raw)


def _exists(raw: str) -> bool:
    try:
        return _expand(raw).exists()
    except (OSError, ValueError):
        return False


def _invalid(raw: str, reason: str) -> InvalidSpecError:
    return InvalidSpecError(f"Invalid spec {raw!r}: {reason}")


def _url_spec(raw: str) -> Spec:
    from lbctl import urls

    try:
        scheme = urlsplit(raw).scheme
    except ValueError:
        scheme = raw.split(":", 1)[0]
    if scheme.lower() not in ("http", "https"):
        raise _invalid(raw, f"unsupported URL scheme {scheme!r}; only http:// and https:// are supported")
    reason = urls.problem(raw)
    if reason is not None:
        raise InvalidSpecError(f"Invalid spec '{urls.shown(raw)}': {reason}")
    return Spec("url", raw, url=raw)


def _marketplace_spec(raw: str) -> Spec:
    match = _MARKETPLACE.match(raw)
    if match is None:
        raise _invalid(raw, FORMS)
    author, name, rest = match.group("author", "name", "rest")
    _check_id_part(raw, "author", author)
    _check_id_part(raw, "name", name)
    version, specifier = _parse_requirement(raw, rest.strip())
    return Spec("marketplace", raw, author=author, name=name, version=version, specifier=specifier)


def _check_id_part(raw: str, part: str, value: str) -> None:
    if not value:
        raise _invalid(raw, f"the plugin {part} is empty; {FORMS}")
    if not ID_PART.match(value):
        raise _invalid(raw, f"the plugin {part} {value!r} may only contain letters, digits, '_' and '-'")


def _parse_requirement(raw: str, rest: str) -> tuple[str | None, str]:
    """(exact version, "") or (None, specifier set); both empty for "newest"."""
    if not rest:
        return None, ""
    if rest.startswith("/"):
        raise _invalid(raw, "a plugin id is author/name, with exactly one '/'")
    if rest.startswith("@"):
        return _check_version(raw, rest[1:].strip()), ""
    exact = _EXACT.match(rest)
    if exact:
        return _check_version(raw, exact.group("version")), ""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(rest)
    except InvalidSpecifier:
        raise _invalid(raw, f"{rest!r} is not a version specifier (use ==1.2.3, @1.2.3 or >=1.2,<2)") from None
    return None, rest


def _check_version(raw: str, version: str) -> str:
    if not version:
        raise _invalid(raw, "the version is empty")
    if not VERSION_CHARS.match(version):
        raise _invalid(raw, f"the version {version!r} may only contain letters, digits and . _ + -")
    return version


def select_version(versions: list[str], spec: Spec, pre: bool = False) -> str:
    """The newest of `versions` that `spec` accepts; raises NotFoundError when none does.

    Versions are compared with packaging.version. A version that does not parse is only chosen by an
    exact request for the same string. Pre-releases are skipped unless `pre` or the spec names one.
    """
    if spec.version is not None:
        found = _select_exact(versions, spec.version)
    else:
        found = _select_newest(versions, spec.specifier, pre)
    if found is None:
        raise _no_match(versions, spec, pre)
    return found


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older, the same as or newer than `b` (as strings when either does not parse)."""
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        va, vb = a, b  # type: ignore[assignment]
    return (va > vb) - (va < vb)


def _parse(version: str) -> Version | None:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        return None


def _select_exact(versions: list[str], wanted: str) -> str | None:
    if wanted in versions:
        return wanted
    target = _parse(wanted)
    if target is None:
        return None
    return next((v for v in versions if _parse(v) == target), None)


def _select_newest(versions: list[str], specifier: str, pre: bool) -> str | None:
    spec_set = _specifier_set(specifier)
    allow_pre = pre or _names_prerelease(spec_set)
    candidates = []
    for version in versions:
        parsed = _parse(version)
        if parsed is None or (parsed.is_prerelease and not allow_pre):
            continue
        if spec_set.contains(parsed, prereleases=True):
            candidates.append((parsed, version))
    # max() keeps the first of equal versions, i.e. the one the marketplace lists first.
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def _specifier_set(specifier: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier)


def _names_prerelease(spec_set: SpecifierSet) -> bool:
    return any((parsed := _parse(item.version)) is not None and parsed.is_prerelease for item in spec_set)


def _no_match(versions: list[str], spec: Spec, pre: bool) -> NotFoundError:
    plugin = spec.id or None
    if not versions:
        return NotFoundError(f"{spec.id} has no versions to choose from", plugin=plugin)
    wanted = f"matches {spec.requirement!r}" if spec.requirement else "is a final release"
    return NotFoundError(f"No version of {spec.id} {wanted}", hint=_hint(versions, spec, pre), plugin=plugin)


def _hint(versions: list[str], spec: Spec, pre: bool) -> str:
    newest = None if pre or spec.version is not None else _select_newest(versions, spec.specifier, True)
    if newest is not None:
        return f"The pre-release {newest} matches; pass --pre to allow pre-releases."
    shown = ", ".join(versions[:5]) + (", ..." if len(versions) > 5 else "")
    return f"Available: {shown} (see `lbctl market show {spec.id} --versions`)."
