"""A plugin's requirements.txt, read as the runtime reads it (runtime-control-protocol.md §12). Pure.

Every line the runtime would refuse at install time raises PackageInvalidError here, naming the line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Final

from lbctl.errors import PackageInvalidError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# packaging (~20 ms: it compiles its grammar) and importlib.metadata (~15 ms) are imported where a package
# has requirements to read, so reading or downloading one without them costs neither.

MAX_BYTES: Final = 1024 * 1024
MAX_COUNT: Final = 1024
RUNTIME_DIST: Final = "langbot-plugin"
PINNED_RUNTIME: Final = "0.7.18"  # what `lbctl[runtime]` installs; used when the runtime is not here
_SDK_SERIES: Final = (0, 6)  # the runtime reads an exact 0.6 pin as a minimum (dependency_environment.py)
_HINT: Final = "The runtime would refuse this plugin (dependency_prepare_failed)."


@lru_cache(maxsize=1)
def runtime_version() -> str:
    """The langbot-plugin version the runtime provides to every plugin."""
    import importlib.metadata

    try:
        return importlib.metadata.version(RUNTIME_DIST)
    except importlib.metadata.PackageNotFoundError:
        return PINNED_RUNTIME


def parse(raw: bytes, *, runtime: str | None = None) -> tuple[str, ...]:
    """The requirements in `raw` (normalised PEP 508 strings), or PackageInvalidError naming the line."""
    if len(raw) > MAX_BYTES:
        raise _refuse(f"requirements.txt is larger than {MAX_BYTES} bytes")
    requirements: list[str] = []
    count = 0
    for number, line in enumerate(_lines(raw), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement = _requirement(line, number)
        if _name(requirement) != RUNTIME_DIST:
            count += 1
            if count > MAX_COUNT:
                raise _refuse(f"requirements.txt line {number}: more than {MAX_COUNT} requirements")
        elif not _runtime_accepts(requirement, number, runtime or runtime_version()):
            continue
        requirements.append(str(requirement))
    return tuple(requirements)


def installable(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """What the runtime installs: everything but the langbot-plugin it provides itself."""
    from packaging.requirements import Requirement

    return [r for r in requirements if _name(Requirement(r)) != RUNTIME_DIST]


def _name(requirement: Requirement) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(requirement.name)


def _lines(raw: bytes) -> list[str]:
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        number = raw[: exc.start].count(b"\n") + 1
        raise _refuse(f"requirements.txt line {number} is not UTF-8") from None


def _requirement(line: str, number: int) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    if line.startswith("-"):
        raise _refuse(f"requirements.txt line {number}: pip options are not allowed ({_short(line)})")
    try:
        return Requirement(line)
    except InvalidRequirement:
        raise _refuse(f"requirements.txt line {number} is not a valid PEP 508 requirement: {_short(line)}") from None


def _runtime_accepts(requirement: Requirement, number: int, runtime: str) -> bool:
    """False when a marker excludes the line; raises when the runtime would refuse it."""
    if requirement.marker is not None and not requirement.marker.evaluate():
        return False
    if requirement.url:
        raise _refuse(f"requirements.txt line {number}: {RUNTIME_DIST} cannot be a direct URL "
                      "(the runtime provides it)")
    if not _satisfied(requirement, runtime):
        raise _refuse(f"requirements.txt line {number}: {requirement} does not accept the runtime's "
                      f"{RUNTIME_DIST} {runtime}")
    return True


def _satisfied(requirement: Requirement, runtime: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if not requirement.specifier or requirement.specifier.contains(runtime, prereleases=True):
        return True
    specifiers = tuple(requirement.specifier)
    if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
        return False
    try:
        wanted, provided = Version(specifiers[0].version), Version(runtime)
    except InvalidVersion:
        return False
    return wanted.release[:2] == _SDK_SERIES == provided.release[:2] and wanted <= provided


def _short(line: str) -> str:
    return repr(line if len(line) <= 60 else line[:57] + "...")


def _refuse(message: str) -> PackageInvalidError:
    return PackageInvalidError(message, hint=_HINT)
