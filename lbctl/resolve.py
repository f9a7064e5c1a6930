"""Specs and plugins-file entries become verified candidate packages, before any target changes.

A package comes from a local file, a URL, the download cache, a --find-links directory or the marketplace
(streamed into the content-addressed cache). Every candidate is read and validated here; the resolver
knows which marketplace to ask (each target installs from its own) but nothing else about targets.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import cached_property, cmp_to_key
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from lbctl import lbpkg
from lbctl.errors import InvalidSpecError, NotFoundError, PackageInvalidError, PackageMismatchError, UsageError
from lbctl.fsutil import sha256_file
from lbctl.models import Candidate, PackageInfo, Record
from lbctl.specs import Spec, compare_versions, marketplace_spec, parse_spec, select_version

if TYPE_CHECKING:
    from lbctl.context import Context
    from lbctl.plugins_file import Entry

T = TypeVar("T")
R = TypeVar("R")


def read_local(path: Path, spec: str | None = None) -> Candidate:
    if not path.exists():
        raise NotFoundError(f"No such file: {path}")
    if not path.is_file():
        raise InvalidSpecError(f"{path} is not a regular file", hint="Give the path of a .lbpkg file.")
    if path.stat().st_size > lbpkg.MAX_TOTAL_SIZE:  # refused before its sha256 is read
        raise PackageInvalidError(f"{path} is larger than the {lbpkg.MAX_TOTAL_SIZE // 2**20} MiB a package may be")
    try:
        info = lbpkg.read_file(path)
    except PackageInvalidError as exc:
        raise PackageInvalidError(f"{path}: {exc.message}", hint=exc.hint, plugin=exc.plugin) from None
    return Candidate(info, path, "local", str(path.resolve()), spec)


class Resolver:
    """Resolves against one marketplace (`index_url`), with the shared cache and --find-links."""

    def __init__(self, ctx: Context, index_url: str | None = None):
        self.ctx = ctx
        self.index_url = (index_url or ctx.settings.index_url).rstrip("/")

    @cached_property
    def market(self):
        return self.ctx.market_for(self.index_url)

    def all(self, specs: list[str], *, pre: bool = False) -> list[Candidate]:
        """Resolve every spec; any failure raises before anything is changed."""
        parsed = [parse_spec(spec) for spec in specs]  # every spec checked before any network
        if sum(p.kind != "local" for p in parsed) > 1:
            candidates = map_all(parsed, lambda spec: self.spec(spec, pre=pre))
        else:
            candidates = [self.spec(spec, pre=pre) for spec in parsed]
        seen: dict[str, str] = {}
        for spec, cand in zip(specs, candidates):
            if cand.id in seen:
                raise UsageError(f"{cand.id} is named twice ({seen[cand.id]} and {spec})")
            seen[cand.id] = spec
        return candidates

    def spec(self, spec: Spec, *, pre: bool = False) -> Candidate:
        if spec.kind == "local":
            return read_local(spec.path or Path(spec.raw).expanduser(), spec.raw)
        if spec.kind == "url":
            return self._from_url(spec)
        return self.fetch(spec, self.version(spec, pre=pre))

    def fetch(self, spec: Spec, version: str) -> Candidate:
        """The package of `version` (chosen by `version()`) from the cache, --find-links or a download."""
        local = self._local_versions(spec.id)
        if version in local:
            return self._verified(local[version], spec, version)
        return self._download(spec, version)

    def version(self, spec: Spec, *, pre: bool = False) -> str:
        """The version a marketplace spec resolves to, without downloading anything."""
        return self._select(spec, self._local_versions(spec.id), pre)

    def entry(self, entry: Entry) -> Candidate:
        """The package a plugins-file entry asks for, checked against its id and sha256; once per command for
        each marketplace (a fleet's targets share it)."""
        key = ("entry", self.index_url, entry.id, entry.version, entry.sha256, entry.path, entry.url)
        return self.ctx.once(key, lambda: self._entry(entry))

    def _entry(self, entry: Entry) -> Candidate:
        if entry.path is not None:
            cand = read_local(self._local_file(entry), None)
        elif entry.url is not None:
            cand = self.spec(parse_spec(entry.url))
        else:
            cand = self.spec(marketplace_spec(entry.id, entry.version))
        if cand.id != entry.id:
            raise PackageMismatchError(f"The package for {entry.id} is {cand.id}", plugin=entry.id)
        if entry.sha256 and cand.info.sha256 != entry.sha256:
            raise PackageMismatchError(
                f"{entry.id}: sha256 {cand.info.sha256} differs from the file's {entry.sha256}", plugin=entry.id)
        return cand

    def previous(self, record: Record) -> Candidate:
        """The package `record` replaced (for `rollback`): from the environment's store or the cache by its
        sha256, else from the marketplace by its version."""
        sha, version = record.previous_sha256 or "", record.previous_version or ""
        source = record.previous_source or record.source
        for found in (self.ctx.env.package_path(sha), self.ctx.cache.packages / f"{sha}.lbpkg"):
            if found.is_file() and sha256_file(found) == sha:
                info = lbpkg.read_file(found, sha)
                return Candidate(info, found, source, record.previous_origin or str(found), record.previous_spec)
        if source == "marketplace" and version:
            cand = self.fetch(marketplace_spec(record.id, version), version)
            if cand.info.sha256 == sha:
                return replace(cand, spec=record.previous_spec)
        raise NotFoundError(f"The package {record.id} {version} replaced is no longer available", plugin=record.id,
                            hint=f"Install the version you want: `lbctl install '{record.id}=={version}'`.")

    def _local_file(self, entry: Entry) -> Path:
        """The entry's path, or else the package with its sha256 in the cache or the environment's store."""
        assert entry.path is not None
        if entry.path.is_file() or not entry.sha256:
            return entry.path
        for found in (self.ctx.cache.packages / f"{entry.sha256}.lbpkg", self.ctx.env.package_path(entry.sha256)):
            if found.is_file():
                return found
        raise NotFoundError(f"{entry.where}: the package of {entry.id} is neither at {entry.path} nor in lbctl's "
                            "cache (by its sha256)", plugin=entry.id,
                            hint="Copy the .lbpkg next to the plugins file, or install it once with lbctl.")

    def _local_versions(self, plugin_id: str) -> dict[str, Path]:
        return {**self.ctx.cache.versions(plugin_id), **self.ctx.find_links.get(plugin_id, {})}

    def _select(self, spec: Spec, local: dict[str, Path], pre: bool) -> str:
        if self.ctx.settings.offline:
            versions = sorted(local, key=cmp_to_key(compare_versions), reverse=True)
            if not versions:
                raise NotFoundError(f"{spec.id} is not in the cache or --find-links (offline)", plugin=spec.id,
                                    hint="Download it first with `lbctl download`, or drop --offline.")
        else:
            with self.ctx.waiting(f"resolving {spec.id}"):
                versions = self.market.versions(spec.author, spec.name)
            versions += [v for v in local if v not in versions]
        return select_version(versions, spec, pre)

    def _verified(self, path: Path, spec: Spec, version: str, sha256: str | None = None) -> Candidate:
        info = lbpkg.read_file(path, sha256)
        if info.id != spec.id or info.version != version:
            raise PackageMismatchError(
                f"The package for {spec.id}=={version} is {info.id}=={info.version}", plugin=spec.id)
        return Candidate(info, path, "marketplace", self.index_url, spec.raw)

    def _download(self, spec: Spec, version: str) -> Candidate:
        found: list[Candidate] = []
        # Checked before the download is renamed into the cache, so a wrong package never lands there.
        check = lambda tmp, sha: found.append(self._verified(tmp, spec, version, sha))  # noqa: E731
        with self._progress(f"{spec.id} {version}") as advance:
            path, sha = self.market.download(spec.author, spec.name, version, dest_dir=self._download_dir(),
                                             on_progress=advance, verify=check)
        if self.ctx.cache.enabled:
            self.ctx.cache.remember(spec.id, version, sha)
        return replace(found[0], path=path)

    def _from_url(self, spec: Spec) -> Candidate:
        if self.ctx.settings.offline:
            raise NotFoundError(f"Offline: cannot download {spec.url}", hint="Drop --offline.")
        found: list[PackageInfo] = []
        with self._progress(spec.url or "") as advance:
            path, _ = self.market.download_url(spec.url or "", dest_dir=self._download_dir(), on_progress=advance,
                                               verify=lambda tmp, sha: found.append(lbpkg.read_file(tmp, sha)))
        return Candidate(found[0], path, "url", spec.url or "", spec.raw)

    def _download_dir(self) -> Path:
        """Where downloads land: the cache, or with --no-cache a scratch directory removed at exit."""
        if self.ctx.cache.enabled:
            return self.ctx.cache.download_dir()
        return self.ctx.scratch

    def _progress(self, label: str):
        return self.ctx.progress(label) if self.ctx.progress else nullcontext()


def map_all(items: list[T], fn: Callable[[T], R]) -> list[R]:
    """`fn` over `items`, in parallel threads when there are several; the first failure is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    from lbctl.marketplace import fetch_many

    results = fetch_many(items, fn)
    for fetched in results:
        if fetched.error is not None:
            raise fetched.error
    return [fetched.value for fetched in results]  # type: ignore[misc]
