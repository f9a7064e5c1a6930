"""Plugin dependencies as wheels. pip itself resolves and downloads them: it is the reference resolver,
and the runtime installs with pip too (runtime-control-protocol.md §12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final, Sequence

from lbctl.errors import LbctlError, NetworkError, NotFoundError, PreconditionError

_QUIET: Final = ["--disable-pip-version-check", "--no-input"]
_NETWORK: Final = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                             r"resolution|Name or service not known|Network is unreachable|ProxyError|"
                             r"ConnectTimeout|Read timed out|Max retries exceeded|connection error")
_NOT_FOUND: Final = re.compile(r"No matching distribution found|Could not find a version that satisfies")


def fetch(requirements: Sequence[str], dest: Path, *, python_version: str | None = None,
          platform: str | None = None, offline: bool = False) -> list[Path]:
    """Resolve `requirements` together and save every wheel they need into `dest`; returns those files.

    For this interpreter (the runtime's) `pip wheel` also builds wheels from sdists; for another Python or
    platform `pip download` can only take published wheels.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        staged = Path(tmp) / "wheels"
        args = _fetch_args(_requirements_file(Path(tmp), requirements), staged, python_version, platform)
        run_pip([*args, *(["--no-index", "--find-links", str(dest)] if offline else [])])
        saved = []
        for wheel in sorted(staged.iterdir()):
            os.replace(wheel, dest / wheel.name)
            saved.append(dest / wheel.name)
    return saved


def resolve(requirements: Sequence[str], *, index_url: str | None = None, find_links: Path | None = None,
            timeout: float | None = None) -> list[dict]:
    """pip's dry-run report of installing `requirements` as the runtime does: what would be installed."""
    source = ["--no-index", "--find-links", str(find_links)] if find_links else ["--index-url", index_url or ""]
    with tempfile.TemporaryDirectory(prefix="lbctl-resolve-") as tmp:
        args = ["install", "--dry-run", "--ignore-installed", "--isolated", "--quiet", "--report", "-", "--retries",
                "1", *_QUIET, *source, "-r", str(_requirements_file(Path(tmp), requirements))]
        return json.loads(run_pip(args, timeout=timeout) or "{}").get("install", [])


def run_pip(args: list[str], *, timeout: float | None = None) -> str:
    """pip's stdout, or the LbctlError its failure means (network, not found, or a conflict)."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise NetworkError(f"pip did not finish within {timeout:g} s") from None
    if done.returncode:
        raise failure(done.stderr)
    return done.stdout


def failure(stderr: str) -> LbctlError:
    reason = reason_of(stderr)
    if "No module named pip" in stderr:
        return PreconditionError("pip is not installed for this Python", hint=f"Run `{sys.executable} -m ensurepip`.")
    if _NETWORK.search(stderr):
        return NetworkError(f"pip could not reach the package index: {reason}")
    if _NOT_FOUND.search(stderr):
        return NotFoundError(reason)
    return PreconditionError(reason)


def reason_of(stderr: str) -> str:
    """pip's own first error line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("ERROR: "):] for line in lines if line.startswith("ERROR: ")]
    return (errors or lines or ["pip failed"])[0]


def _fetch_args(requirements: Path, out: Path, python_version: str | None, platform: str | None) -> list[str]:
    if python_version is None and platform is None:
        return ["wheel", *_QUIET, "--quiet", "--wheel-dir", str(out), "-r", str(requirements)]
    target = [*(["--python-version", python_version] if python_version else []),
              *(["--platform", platform] if platform else [])]
    return ["download", *_QUIET, "--quiet", "--only-binary=:all:", *target, "--dest", str(out), "-r",
            str(requirements)]


def _requirements_file(directory: Path, requirements: Sequence[str]) -> Path:
    path = directory / "requirements.txt"
    path.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
    return path
