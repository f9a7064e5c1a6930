"""download: resolve specs and save the packages for offline use (--find-links), without installing."""

from __future__ import annotations

from pathlib import Path

from lbctl.context import Context
from lbctl.fsutil import copy_atomic
from lbctl.models import Result


def download(ctx: Context, specs: list[str], dest: Path, *, pre: bool = False) -> Result:
    candidates = ctx.target.resolver.all(specs, pre=pre)
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for cand in candidates:
        info = cand.info
        path = dest / f"{info.author}-{info.name}-{info.version}.lbpkg"
        copy_atomic(cand.path, path, info.sha256)
        files.append({"id": info.id, "version": info.version, "path": str(path), "sha256": info.sha256})
    return Result("download", "files", {"files": files})
