"""Marketplace and URL packages: resolve a spec to a version, find it in --find-links or the cache, or
download it (streamed into the content-addressed cache), and verify it is what was asked for."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import cmp_to_key
from pathlib import Path

from lbctl import lbpkg
from lbctl.context import Context
from lbctl.errors import NotFoundError, PackageMismatchError
from lbctl.fsutil import copy_atomic
from lbctl.models import Result
from lbctl.ops.install import compare_versions
from lbctl.ops.resolve import Candidate, resolve_all
from lbctl.specs import Spec, parse_spec, select_version


def _local_versions(ctx: Context, plugin_id: str) -> dict[str, Path]:
    return {**ctx.cache.versions(plugin_id), **ctx.find_links.get(plugin_id, {})}


def resolve(ctx: Context, spec: Spec, *, pre: bool = False) -> Candidate:
    if spec.kind == "url":
        return _from_url(ctx, spec)
    local = _local_versions(ctx, spec.id)
    version = _select(ctx, spec, local, pre)
    if version in local:
        return _verified(local[version], spec, version, ctx)
    return _download(ctx, spec, version)


def resolve_version(ctx: Context, spec: Spec, *, pre: bool = False) -> str:
    """The version a marketplace spec resolves to, without downloading anything."""
    return _select(ctx, spec, _local_versions(ctx, spec.id), pre)


def _select(ctx: Context, spec: Spec, local: dict[str, Path], pre: bool) -> str:
    if ctx.settings.offline:
        versions = sorted(local, key=cmp_to_key(compare_versions), reverse=True)
        if not versions:
            raise NotFoundError(f"{spec.id} is not in the cache or --find-links (offline)", plugin=spec.id,
                                hint="Download it first with `lbctl download`, or drop --offline.")
    else:
        versions = ctx.market.versions(spec.author, spec.name)
        versions += [v for v in local if v not in versions]
    return select_version(versions, spec, pre)


def _verified(path: Path, spec: Spec, version: str, ctx: Context, sha256: str | None = None) -> Candidate:
    info = lbpkg.read_file(path, sha256)
    if info.id != spec.id or info.version != version:
        raise PackageMismatchError(
            f"The package for {spec.id}=={version} is {info.id}=={info.version}", plugin=spec.id)
    return Candidate(info, path, "marketplace", ctx.settings.index_url, spec.raw)


def _download(ctx: Context, spec: Spec, version: str) -> Candidate:
    cache = ctx.cache
    found: list[Candidate] = []
    # Checked before the download is renamed into the cache, so a wrong package never lands there.
    check = lambda tmp, sha: found.append(_verified(tmp, spec, version, ctx, sha))  # noqa: E731
    with _progress(ctx, f"{spec.id} {version}") as advance:
        path, sha = ctx.market.download(spec.author, spec.name, version, dest_dir=_download_dir(ctx),
                                        on_progress=advance, verify=check)
    if cache.enabled:
        cache.remember(spec.id, version, sha)
    return replace(found[0], path=path)


def _from_url(ctx: Context, spec: Spec) -> Candidate:
    from lbctl.marketplace import MarketplaceClient, make_http

    if ctx.settings.offline:
        raise NotFoundError(f"Offline: cannot download {spec.url}", hint="Drop --offline.")
    client = MarketplaceClient((ctx.http_factory or make_http)(ctx.settings.index_url, timeout=ctx.settings.timeout))
    found: list = []
    with _progress(ctx, spec.url or "") as advance:
        path, _ = client.download_url(spec.url or "", dest_dir=_download_dir(ctx), on_progress=advance,
                                      verify=lambda tmp, sha: found.append(lbpkg.read_file(tmp, sha)))
    return Candidate(found[0], path, "url", spec.url or "", spec.raw)


def _download_dir(ctx: Context) -> Path:
    """Where downloads land: the cache, or with --no-cache a scratch directory removed at exit."""
    if ctx.cache.enabled:
        ctx.cache.packages.mkdir(parents=True, exist_ok=True)
        return ctx.cache.packages
    return ctx.scratch


def _progress(ctx: Context, label: str):
    return ctx.progress(label) if ctx.progress else nullcontext()


def download(ctx: Context, specs: list[str], dest: Path, *, pre: bool = False) -> Result:
    for raw in specs:
        parse_spec(raw)
    candidates = resolve_all(ctx, specs, pre=pre)
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for cand in candidates:
        info = cand.info
        path = dest / f"{info.author}-{info.name}-{info.version}.lbpkg"
        copy_atomic(cand.path, path, info.sha256)
        files.append({"id": info.id, "version": info.version, "path": str(path), "sha256": info.sha256})
    return Result("download", "files", {"files": files})
