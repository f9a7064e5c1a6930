"""verify and cache: checks of what is stored on disk; freeze: what a target holds, as a plugins file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from lbctl.context import Context
from lbctl.errors import LbctlError, NotInstalledError, UsageError
from lbctl.fsutil import NotRegularFile, sha256_file
from lbctl.models import Record, Result
from lbctl.ops.common import on
from lbctl.targets import require_local

if TYPE_CHECKING:
    from lbctl.targets.base import Target


def verify(ctx: Context, ids: list[str]) -> Result:
    require_local(ctx, "verify", "LangBot keeps its plugins' packages itself and has no API that hashes them",
                  hint="`lbctl --target NAME doctor` checks a LangBot target; `verify` without --target checks "
                       "the local environment.")
    from lbctl.ids import expand, suggestion

    state = ctx.env.load()
    ids = [expand(pid, state.plugins) for pid in ids]
    for pid in ids:
        if pid not in state.plugins:
            raise NotInstalledError(f"{pid} is not installed", plugin=pid,
                                    hint=suggestion(pid, state.plugins) or "Run `lbctl list` to see what is.")
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


# --- freeze ----------------------------------------------------------------------------------------


def freeze(ctx: Context, *, with_config: bool = False, include_secrets: bool = False, bundle: Path | None = None,
           bundle_all: bool = False) -> Result:
    """A plugins file of each target; with `bundle`, written into that directory beside copies of the
    packages it needs (`path =` relative to it), so that it works on another machine."""
    from lbctl.ops.fleet import each
    from lbctl.targets import open_targets

    if bundle_all and bundle is None:
        raise UsageError("--bundle-all goes with --bundle DIR")
    targets = open_targets(ctx)
    if bundle is not None and len(targets) > 1:
        raise UsageError("--bundle writes one plugins file: give one --target")
    return each(ctx, "freeze", lambda target: freeze_target(target, with_config, include_secrets, bundle,
                                                            bundle_all), targets)


def freeze_target(target: Target, with_config: bool, include_secrets: bool, bundle: Path | None = None,
                  bundle_all: bool = False) -> Result:
    from lbctl import plugins_file

    warnings: list[str] = []
    notes: list[str] = []
    frozen = _Bundle(target, bundle, bundle_all, warnings) if bundle is not None else None
    rows = [_frozen(target, record, with_config, include_secrets, warnings, notes, frozen)
            for record in sorted(target.records().values(), key=lambda r: r.id)]
    if frozen is None:
        header = f"# Written by `lbctl freeze` from {target.name}; apply with `lbctl sync FILE`.\n"
        text = plugins_file.dumps(rows, header + "".join(f"# {note}\n" for note in notes))
        return on(target, Result("freeze", "freeze", {"plugins": rows}, tuple(warnings), text=text))
    return on(target, frozen.write(rows, include_secrets))


def _frozen(target: Target, record: Record, with_config: bool, include_secrets: bool, warnings: list[str],
            notes: list[str], bundle: _Bundle | None) -> dict:
    path = url = None
    if record.source == "url":
        url = record.origin
    elif record.source != "marketplace":
        found = _package_file(target, record)
        if found is None:
            warnings.append(f"{record.id}: its package (sha256 {record.sha256}) is not in lbctl's cache; "
                            "the file cannot be synced until it is there (install it once with lbctl)")
        elif bundle is not None:
            path = bundle.add(record, found)
        else:
            path = str(found)
            if _is_lbctls_copy(target, found):
                came = f" (installed from {record.origin})" if record.origin else ""
                notes.append(f"{record.id}: path is lbctl's own copy of the package{came}; it exists on this "
                             "machine only")
                warnings.append(f"{record.id}: its path is lbctl's own copy of the package, on this machine only "
                                "(`lbctl freeze --bundle DIR` copies it beside the file)")
    elif bundle is not None and bundle.all:
        bundle.add(record, _package_file(target, record) or bundle.download(record))
    config = _frozen_config(target, record, include_secrets, warnings) if with_config else None
    return {"id": record.id, "version": record.version, "source": record.source, "sha256": record.sha256,
            "path": path, "url": url, "enabled": record.enabled, "config": config, "pinned": record.pinned,
            "pin_reason": record.pin_reason if record.pinned else None}


def _package_file(target: Target, record: Record) -> Path | None:
    """The package's bytes: the file it was installed from while it is unchanged, else the target's copy."""
    origin = Path(record.origin) if record.origin and record.source == "local" else None
    try:
        if origin is not None and origin.is_file() and sha256_file(origin) == record.sha256:
            return origin
    except OSError:
        pass
    return target.package_file(record)


def _is_lbctls_copy(target: Target, path: Path) -> bool:
    settings = target.ctx.settings
    roots = [root.resolve() for root in (settings.cache_dir, settings.home) if root is not None]
    return any(path.resolve().is_relative_to(root) for root in roots)


class _Bundle:
    """`freeze --bundle DIR`: the packages the file needs, copied into DIR (`author-name-version.lbpkg`,
    as `download -d` names them, so that DIR also serves `--find-links`), and DIR/plugins.toml."""

    def __init__(self, target: Target, root: Path, all_: bool, warnings: list[str]):
        self.target, self.root, self.all, self.warnings = target, root, all_, warnings
        self.files: list[dict] = []

    def add(self, record: Record, found: Path | None) -> str | None:
        if found is None:
            return None
        from lbctl.fsutil import copy_atomic

        author, name = record.id.split("/", 1)
        dest = self.root / f"{author}-{name}-{record.version}.lbpkg"
        self.root.mkdir(parents=True, exist_ok=True)
        sha = record.sha256 or sha256_file(found)
        copy_atomic(found, dest, sha, durable=False)
        self.files.append({"id": record.id, "version": record.version, "path": str(dest), "sha256": sha})
        return dest.name

    def download(self, record: Record) -> Path | None:
        """A marketplace package lbctl does not hold (LangBot downloaded it itself): from the marketplace."""
        from lbctl.specs import marketplace_spec

        try:
            cand = self.target.resolver.fetch(marketplace_spec(record.id, f"=={record.version}"), record.version)
        except LbctlError as exc:
            self.warnings.append(f"{record.id}: not bundled: {exc.message}")
            return None
        if record.sha256 and cand.info.sha256 != record.sha256:
            self.warnings.append(f"{record.id}: not bundled: the marketplace's {record.version} has sha256 "
                                 f"{cand.info.sha256}, not the installed {record.sha256}")
            return None
        return cand.path

    def write(self, rows: list[dict], include_secrets: bool) -> Result:
        from lbctl import plugins_file
        from lbctl.fsutil import write_atomic

        file = self.root / "plugins.toml"
        find_links = f"--find-links {self.root} " if self.all else ""
        header = (f"# Written by `lbctl freeze --bundle` from {self.target.name}, beside the packages it needs;\n"
                  f"# apply with `lbctl sync {find_links}{file}`.\n")
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(file, plugins_file.dumps(rows, header).encode(), mode=0o600 if include_secrets else 0o644,
                     durable=False)
        data = {"plugins": rows, "bundle": {"dir": str(self.root), "file": str(file), "files": self.files}}
        return Result("freeze", "bundle", data, tuple(self.warnings))


def _frozen_config(target: Target, record: Record, include_secrets: bool, warnings: list[str]) -> dict:
    # Keys outside the schema (stored with --force) would not pass `sync`'s validation: left out.
    from lbctl import configschema

    schema = target.schema(record.id)
    names = {item["name"] for item in schema}
    config = {k: v for k, v in target.config(record.id).items() if k in names}
    nulls = [k for k in configschema.toml_omitted(schema, config, include_secrets=True) if config.get(k) is not None]
    if nulls:
        warnings.append(f"{record.id}: {', '.join(nulls)} hold a null, which TOML cannot express; left out")
    config = {k: v for k, v in config.items() if k not in nulls}
    if not include_secrets:
        return configschema.without_secrets(schema, config)
    hidden = [k for k, v in config.items() if configschema.contains_mask(v)]
    if hidden:
        warnings.append(f"{record.id}: {target.name} does not reveal the secret values of {', '.join(hidden)}; "
                        "set them after a sync")
    return {k: v for k, v in config.items() if k not in hidden}
