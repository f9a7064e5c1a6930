"""market search / market show."""

from __future__ import annotations

from lbctl.context import Context
from lbctl.errors import UsageError
from lbctl.models import Result
from lbctl.targets import open_one

SORTS = ("installs", "newest", "updated")


def _description(record: dict) -> str:
    for field in ("description", "label"):
        text = record.get(field) or {}
        if isinstance(text, dict):
            value = text.get("en_US") or next((v for v in text.values() if isinstance(v, str) and v), "")
            if value:
                return value
    return ""


def search(ctx: Context, query: str = "", *, component: str | None = None, tags: list[str] = (),
           sort: str = "installs", page: int = 1, limit: int = 20) -> Result:
    if sort not in SORTS:
        raise UsageError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if page < 1 or not 1 <= limit <= 100:
        raise UsageError("--page must be at least 1 and --limit between 1 and 100")
    target = open_one(ctx)  # the marketplace it installs from, and what is installed there
    with ctx.waiting("searching the marketplace"):
        items, total = ctx.market_for(target.index_url).search(query, component=component, tags=tags, sort=sort,
                                                                page=page, page_size=limit)
    installed = target.records()
    plugins = [{
        "id": item.get("plugin_id") or f"{item.get('author')}/{item.get('name')}",
        "latest_version": item.get("latest_version"), "install_count": item.get("install_count"),
        "description": _description(item),
        "installed": installed[pid].version if (pid := item.get("plugin_id")) in installed else None,
    } for item in items]
    return Result("market search", "search", {"plugins": plugins, "total": total, "page": page})


def show(ctx: Context, plugin_id: str, *, versions: bool = False) -> Result:
    from lbctl.specs import marketplace_spec

    spec = marketplace_spec(plugin_id)
    market = ctx.market_for(open_one(ctx).index_url)  # the marketplace the target installs from
    with ctx.waiting(f"asking the marketplace about {spec.id}"):
        record = market.plugin(spec.author, spec.name)
        listed = market.versions(spec.author, spec.name) if versions else None
    return Result("market show", "market_plugin", {"plugin": record, "versions": listed})
