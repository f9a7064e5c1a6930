"""market search / market show."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from lbctl.cli.options import PluginId

market_app = typer.Typer(help="Search and inspect the marketplace.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(market_app, name="market")


@market_app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Free text.")] = "",
    component: Annotated[Optional[str], typer.Option("--component", help="Tool, Command, EventListener, ...")] = None,
    tag: Annotated[Optional[List[str]], typer.Option("--tag", help="Tag (repeatable).")] = None,
    sort: Annotated[str, typer.Option("--sort", help="installs, newest or updated.")] = "installs",
    page: Annotated[int, typer.Option("--page", help="Page number.")] = 1,
    limit: Annotated[int, typer.Option("--limit", help="Results per page (1-100).")] = 20,
) -> None:
    """Search marketplace plugins."""
    from lbctl.ops import market

    ctx.obj.render(market.search(ctx.obj.context, query, component=component, tags=tag or [], sort=sort,
                                 page=page, limit=limit))


@market_app.command("show")
def show(ctx: typer.Context, plugin_id: PluginId,
         versions: Annotated[bool, typer.Option("--versions", help="List every version, newest first.")] = False) -> None:
    """Show a plugin's marketplace record."""
    from lbctl.ops import market

    ctx.obj.render(market.show(ctx.obj.context, plugin_id, versions=versions))
