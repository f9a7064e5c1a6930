"""Turn specs into verified candidate packages, before anything in the environment changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from lbctl import lbpkg
from lbctl.context import Context
from lbctl.errors import LbctlError, NotFoundError, UsageError
from lbctl.models import PackageInfo


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Candidate:
    info: PackageInfo
    path: Path  # the verified package file (the user's file, or one in the download cache)
    source: str
    origin: str
    spec: str | None = None


def read_local(path: Path, spec: str | None = None) -> Candidate:
    if not path.exists():
        raise NotFoundError(f"No such file: {path}")
    return Candidate(lbpkg.read_file(path), path, "local", str(path.resolve()), spec)


def stored_schema(ctx: Context, sha256: str) -> tuple[dict, ...] | None:
    """The config schema of a package in the environment's store, or None when it cannot be read."""
    try:
        return lbpkg.read_config_schema(ctx.env.package_path(sha256))
    except LbctlError:
        return None


def resolve_all(ctx: Context, specs: list[str], *, pre: bool = False) -> list[Candidate]:
    """Resolve every spec; any failure raises before anything is changed."""
    from lbctl.specs import parse_spec

    remote = [spec for spec in specs if parse_spec(spec).kind != "local"]  # every spec checked first
    if len(remote) > 1:
        candidates = map_all(specs, lambda spec: resolve(ctx, spec, pre=pre))
    else:
        candidates = [resolve(ctx, spec, pre=pre) for spec in specs]
    seen: dict[str, str] = {}
    for spec, cand in zip(specs, candidates):
        if cand.info.id in seen:
            raise UsageError(f"{cand.info.id} is named twice ({seen[cand.info.id]} and {spec})")
        seen[cand.info.id] = spec
    return candidates


def resolve(ctx: Context, spec: str, *, pre: bool = False) -> Candidate:
    from lbctl.specs import parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "local":
        return read_local(parsed.path or Path(spec).expanduser(), spec)
    from lbctl.ops import remote

    return remote.resolve(ctx, parsed, pre=pre)


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
