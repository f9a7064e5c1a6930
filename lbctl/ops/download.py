"""download: resolve specs and save the packages for offline use (--find-links), without installing."""

from __future__ import annotations

from pathlib import Path

from lbctl.context import Context
from lbctl.fsutil import copy_atomic
from lbctl.errors import UsageError
from lbctl.models import Result
from lbctl.targets import open_one


def download(ctx: Context, specs: list[str], dest: Path, *, pre: bool = False, with_deps: bool = False,
             python_version: str | None = None, platform: str | None = None, allow_sdist: bool = False) -> Result:
    if (python_version or platform or allow_sdist) and not with_deps:
        raise UsageError("--python-version, --platform and --allow-sdist go with --with-deps")
    if with_deps:
        from lbctl.ops.deps import check_target

        check_target(python_version, platform, allow_sdist)
    candidates = open_one(ctx).resolver.all(specs, pre=pre)
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for cand in candidates:
        info = cand.info
        path = dest / f"{info.author}-{info.name}-{info.version}.lbpkg"
        # Renamed into place whole, but not fsynced (like pip and uv): a file a power cut damaged fails its
        # checks (zip CRCs, and the sha256 a plugins file pins) when used. The fsync was 0.1-0.2 s of a 50 MB
        # download's 0.5 s.
        copy_atomic(cand.path, path, info.sha256, durable=False)
        files.append({"id": info.id, "version": info.version, "path": str(path), "sha256": info.sha256})
    data: dict = {"files": files}
    if with_deps:
        from lbctl.ops.deps import download_wheels

        data["wheels"] = download_wheels(ctx, [(c.info.id, c.info.requirements) for c in candidates], dest,
                                         python_version=python_version, platform=platform, allow_sdist=allow_sdist)
    return Result("download", "files", data)
