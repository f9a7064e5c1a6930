"""A plugin's requirements.txt, read as the runtime reads it (runtime-control-protocol.md §12). Pure.

Every line the runtime would refuse at install time raises PackageInvalidError here, naming the line. So does
every line that would make pip do more than fetch a released package from an index: a direct reference
(`name @ URL`: any host, a local file or directory, built on the spot), a name pip reads as a local archive
(`foo.whl`), and `${...}` (pip expands it from the environment in a requirements file). lbctl itself then
passes only lines that pass `check` to pip (see wheelhouse.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Final

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
_UNSAFE_HINT: Final = ("lbctl takes only released packages from an index: pip would download, build and run a direct "
                       "reference, and fill ${...} from your environment. Ask the plugin's author to require a "
                       "released version.")
# What pip reads as a local archive when a requirement is only a name (pip/_internal/utils/filetypes.py).
_ARCHIVES: Final = (".zip", ".whl", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma",
                    ".tar.gz", ".tgz", ".tar")


class RequirementRefused(PackageInvalidError):
    """A requirements.txt line lbctl or the runtime does not accept."""


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
            _check_safe(requirement, line, f"requirements.txt line {number}")
            count += 1
            if count > MAX_COUNT:
                raise _refuse(f"requirements.txt line {number}: more than {MAX_COUNT} requirements")
        elif not _runtime_accepts(requirement, number, lambda: runtime or runtime_version()):
            continue
        requirements.append(str(requirement))
    return tuple(requirements)


def installable(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """What the runtime installs: everything but the langbot-plugin it provides itself."""
    from packaging.requirements import Requirement

    return [r for r in requirements if _name(Requirement(r)) != RUNTIME_DIST]


def check(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """The requirements again, each checked as `parse` checks a line: what may be given to pip, and nothing else.

    Requirements come from packages that `parse` read when they were stored; this is the last check before pip,
    so that a package stored by an older lbctl (or edited since) cannot hand pip a line `parse` refuses now.
    """
    checked = []
    for requirement in requirements:
        if not isinstance(requirement, str) or not requirement or requirement != requirement.strip() \
                or len(requirement.splitlines()) != 1:
            raise _refuse(f"requirement {_short(str(requirement))} is not one requirement")
        _check_safe(_requirement(requirement, None), requirement, f"requirement {_short(requirement)}")
        checked.append(requirement)
    return checked


def _name(requirement: Requirement) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(requirement.name)


def _lines(raw: bytes) -> list[str]:
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        number = raw[: exc.start].count(b"\n") + 1
        raise _refuse(f"requirements.txt line {number} is not UTF-8") from None


def _requirement(line: str, number: int | None) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    where = f"requirements.txt line {number}" if number is not None else f"requirement {_short(line)}"
    if line.startswith("-"):
        raise _refuse(f"{where}: pip options are not allowed ({_short(line)})")
    if "${" in line:
        raise _refuse(f"{where}: ${{...}} is not allowed, pip would fill it from the environment ({_short(line)})",
                      _UNSAFE_HINT)
    try:
        return Requirement(line)
    except InvalidRequirement:
        raise _refuse(f"{where} is not a valid PEP 508 requirement: {_short(line)}") from None


def _check_safe(requirement: Requirement, line: str, where: str) -> None:
    """Refuse what would make pip fetch or build anything but a released package of the index."""
    if requirement.url:
        raise _refuse(f"{where}: direct references (name @ URL) are not allowed ({_short(line)})", _UNSAFE_HINT)
    # pip reads what comes before the marker as a path when it looks like one (pip/_internal/req/constructors.py):
    # a name ending like an archive (extras are taken off first), or an arbitrary-equality version (===) holding
    # a path.
    head = str(requirement).split(";", 1)[0].strip()
    if any(text.lower().endswith(_ARCHIVES) for text in (head, requirement.name)) or any(c in head for c in "/\\:"):
        raise _refuse(f"{where}: pip would read {_short(head)} as a local path, not a package", _UNSAFE_HINT)


def _runtime_accepts(requirement: Requirement, number: int, runtime: Callable[[], str]) -> bool:
    """False when a marker excludes the line; raises when the runtime would refuse it. `runtime()` (the
    installed langbot-plugin's version: importlib.metadata, ~13 ms) is asked only for a line with a version."""
    if requirement.marker is not None and not requirement.marker.evaluate():
        return False
    if requirement.url:
        raise _refuse(f"requirements.txt line {number}: {RUNTIME_DIST} cannot be a direct URL "
                      "(the runtime provides it)")
    if requirement.specifier and not _satisfied(requirement, runtime()):
        raise _refuse(f"requirements.txt line {number}: {requirement} does not accept the runtime's "
                      f"{RUNTIME_DIST} {runtime()}")
    return True


def _satisfied(requirement: Requirement, runtime: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if requirement.specifier.contains(runtime, prereleases=True):
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


def _refuse(message: str, hint: str = _HINT) -> RequirementRefused:
    return RequirementRefused(message, hint=hint)
