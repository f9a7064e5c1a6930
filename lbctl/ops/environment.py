"""verify and cache: checks of what is stored on disk."""

from __future__ import annotations

import shutil

from lbctl.context import Context
from lbctl.errors import NotInstalledError, UsageError
from lbctl.fsutil import NotRegularFile, sha256_file
from lbctl.models import Result


def verify(ctx: Context, ids: list[str]) -> Result:
    state = ctx.env.load()
    for pid in ids:
        if pid not in state.plugins:
            raise NotInstalledError(f"{pid} is not installed", plugin=pid)
    ok, mismatched, missing = [], [], []
    for pid in sorted(ids or state.plugins):
        record = state.plugins[pid]
        try:
            actual = sha256_file(ctx.env.package_path(record.sha256))
        except (FileNotFoundError, NotRegularFile):  # gone, or a FIFO, a device, a directory in its place
            missing.append(pid)
            continue
        if actual == record.sha256:
            ok.append(pid)
        else:
            mismatched.append({"id": pid, "expected": record.sha256, "actual": actual})
    errors = _verify_errors(mismatched, missing)
    return Result("verify", "verify", {"ok": ok, "mismatched": mismatched, "missing": missing}, errors=errors,
                  exit_code=1 if errors else 0)


def _verify_errors(mismatched: list[dict], missing: list[str]) -> tuple[dict, ...]:
    hint = "Reinstall it with `lbctl install --force ID` (or `lbctl sync FILE`)."
    found = [{"code": "sha256_mismatch", "plugin": m["id"], "hint": hint,
              "message": f"{m['id']}: the stored package has sha256 {m['actual']}, not {m['expected']}"}
             for m in mismatched]
    return tuple(found + [{"code": "package_missing", "plugin": pid, "hint": hint,
                           "message": f"{pid}: the stored package is gone"} for pid in missing])


def cache(ctx: Context, action: str) -> Result:
    root = ctx.settings.cache_dir
    if action == "dir":
        return Result("cache dir", "value", {"key": "cache_dir", "value": str(root)})
    packages = sorted((root / "packages").glob("*.lbpkg")) if (root / "packages").is_dir() else []
    if action == "list":
        index = _index(root)
        files = [{"sha256": p.stem, "size": p.stat().st_size, "ids": index.get(p.stem, [])} for p in packages]
        return Result("cache list", "cache", {"files": files, "size": sum(f["size"] for f in files)})
    if action == "clear":
        size = sum(p.stat().st_size for p in packages)
        shutil.rmtree(root, ignore_errors=True)
        return Result("cache clear", "cache_cleared", {"removed": len(packages), "size": size})
    raise UsageError(f"Unknown cache action {action!r}: use dir, list or clear")


def _index(root) -> dict[str, list[str]]:
    from lbctl.cache import Cache

    by_sha: dict[str, list[str]] = {}
    for key, sha in Cache(root).entries().items():
        by_sha.setdefault(sha, []).append(key)
    return by_sha
