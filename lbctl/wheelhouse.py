"""Plugin dependencies as wheels. pip itself resolves and downloads them: it is the reference resolver,
and the runtime installs with pip too (runtime-control-protocol.md §12).

pip runs plugin-supplied requirements, so it runs on a short leash: only requirements that pass
`requirements.check`, given as arguments after `--` (never in a requirements file, where pip would fill
`${VAR}` from the environment); an environment that passes on only what pip needs (no LBCTL_*/LANGBOT_*
variable, no API key); an empty working directory; and wheels only, unless the caller asks for builds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final, Mapping, Sequence

from lbctl import requirements as reqs
from lbctl.errors import LbctlError, NetworkError, NotFoundError, PreconditionError

_QUIET: Final = ["--disable-pip-version-check", "--no-input"]
_NETWORK: Final = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                             r"resolution|Name or service not known|Network is unreachable|ProxyError|"
                             r"ConnectTimeout|Read timed out|Max retries exceeded|connection error")
_NOT_FOUND: Final = re.compile(r"No matching distribution found|Could not find a version that satisfies")
_NO_VERSION: Final = re.compile(r"satisfies the requirement (\S+)(?: \(from [^)]*\))? \(from versions: (.*)\)")
_MAX_ARGUMENT: Final = 100_000  # bytes; Linux refuses one argument over 128 KiB (MAX_ARG_STRLEN)
# What pip's environment keeps (runtime-control-protocol.md §12 lists the runtime's own allow-list): the path,
# the locale, pip's configuration (PIP_*, its files under HOME/XDG), proxies and certificates. Nothing else:
# not LBCTL_API_KEY, LANGBOT_API_KEY, a target's --api-key-env variable or a runtime token.
_PASSED: Final = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC",
    "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_CACHE_HOME",
    "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE", "VIRTUAL_ENV",
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "APPDATA", "LOCALAPPDATA", "USERPROFILE",
    "PROGRAMDATA",
})  # fmt: skip
_PASSED_PREFIXES: Final = ("PIP_", "LC_")
SDIST_HINT: Final = ("If it is published only as a source distribution, --allow-sdist builds it (that runs its "
                     "build code, with pip's environment only).")


def pip_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment pip runs with: an allow-list of `environ`."""
    return {name: value for name, value in environ.items()
            if (name in _PASSED or name.startswith(_PASSED_PREFIXES))
            and not name.startswith(("LBCTL_", "LANGBOT_"))}


def fetch(requirements: Sequence[str], dest: Path, *, python_version: str | None = None,
          platform: str | None = None, offline: bool = False, allow_sdist: bool = False) -> list[Path]:
    """Resolve `requirements` together and save every wheel they need into `dest`; returns those files.

    Only published wheels unless `allow_sdist`: then `pip wheel` also builds wheels from source distributions,
    for this interpreter (the runtime's) only (ops.deps.check_target refuses it with another Python or platform).
    """
    dest = dest.absolute()  # pip runs in a directory of its own
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        staged = Path(tmp) / "wheels"
        args = _fetch_args(staged, python_version, platform, allow_sdist)
        run_pip([*args, *(["--no-index", "--find-links", str(dest)] if offline else [])], requirements,
                wheels_only=not allow_sdist)
        saved = []
        for wheel in sorted(staged.iterdir()) if staged.is_dir() else ():
            os.replace(wheel, dest / wheel.name)
            saved.append(dest / wheel.name)
    return saved


def resolve(requirements: Sequence[str], *, index_url: str | None = None, find_links: Path | None = None,
            timeout: float | None = None) -> list[dict]:
    """pip's dry-run report of installing `requirements` as the runtime does: what would be installed.

    Wheels only: a diagnostic never builds a source distribution (that would run the package's code).
    """
    source = (["--no-index", "--find-links", str(find_links.absolute())] if find_links
              else ["--index-url", index_url or ""])
    args = ["install", "--dry-run", "--ignore-installed", "--isolated", "--only-binary", ":all:", "--quiet",
            "--report", "-", "--retries", "1", *_QUIET, *source]
    return json.loads(run_pip(args, requirements, timeout=timeout) or "{}").get("install", [])


def run_pip(args: list[str], requirements: Sequence[str] = (), *, timeout: float | None = None,
            wheels_only: bool = False) -> str:
    """pip's stdout, or the LbctlError its failure means (network, not found, or a conflict); `wheels_only`
    says a requirement pip cannot find is one without a wheel.

    `requirements` go after `--`, each checked again (`requirements.check`: this is the one way lbctl runs pip);
    pip runs in an empty directory with `pip_environment()`.
    """
    needed = reqs.check(requirements)
    too_long = next((r for r in needed if len(r.encode()) > _MAX_ARGUMENT), None)
    if too_long is not None:
        raise reqs.RequirementRefused(f"requirement {too_long[:40]!r}... is longer than {_MAX_ARGUMENT} bytes")
    command = [sys.executable, "-m", "pip", *args, *(["--", *needed] if needed else [])]
    with tempfile.TemporaryDirectory(prefix="lbctl-pip-") as cwd:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                                  stdin=subprocess.DEVNULL, env=pip_environment())
        except subprocess.TimeoutExpired:
            raise NetworkError(f"pip did not finish within {timeout:g} s") from None
    if done.returncode:
        raise failure(done.stderr, wheels_only=wheels_only)
    return done.stdout


def failure(stderr: str, *, wheels_only: bool = False) -> LbctlError:
    reason = reason_of(stderr)
    if "No module named pip" in stderr:
        return PreconditionError("pip is not installed for this Python", hint=f"Run `{sys.executable} -m ensurepip`.")
    if _NETWORK.search(stderr):
        return NetworkError(f"pip could not reach the package index: {reason}")
    if _NOT_FOUND.search(stderr):
        missing = _NO_VERSION.search(stderr)
        if wheels_only and missing:
            requirement, versions = missing.groups()
            found = "" if versions == "none" else f" (wheels of other versions: {versions})"
            return NotFoundError(f"No wheel found for {requirement}{found}", hint=SDIST_HINT)
        return NotFoundError(reason)
    return PreconditionError(reason)


def reason_of(stderr: str) -> str:
    """pip's own first error line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("ERROR: "):] for line in lines if line.startswith("ERROR: ")]
    return (errors or lines or ["pip failed"])[0]


def _fetch_args(out: Path, python_version: str | None, platform: str | None, allow_sdist: bool) -> list[str]:
    if allow_sdist:
        return ["wheel", *_QUIET, "--quiet", "--wheel-dir", str(out)]
    target = [*(["--python-version", python_version] if python_version else []),
              *(["--platform", platform] if platform else [])]
    return ["download", *_QUIET, "--quiet", "--only-binary", ":all:", *target, "--dest", str(out)]
