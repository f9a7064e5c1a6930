"""freeze, sync, verify, cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from lbctl.cli.options import DryRun

cache_app = typer.Typer(help="The download cache.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("freeze")(freeze)
    app.command("sync", epilog="Examples:  lbctl sync plugins.toml --prune  ·  lbctl sync --offline --find-links vendor "
                                "plugins.toml  ·  lbctl --target prod --wait-ready 120 sync plugins.toml")(sync)
    app.command("verify")(verify)
    app.add_typer(cache_app, name="cache")


def freeze(ctx: typer.Context,
           with_config: Annotated[bool, typer.Option("--with-config", help="Include each plugin's config.")] = False,
           include_secrets: Annotated[bool, typer.Option("--include-secrets", help="Include secret config values.")] = False,
           bundle: Annotated[Optional[Path], typer.Option("--bundle", metavar="DIR", help="Write DIR/plugins.toml beside copies of its local packages, for another machine.")] = None,
           bundle_all: Annotated[bool, typer.Option("--bundle-all", help="With --bundle, copy the marketplace packages too (DIR then serves --find-links).")] = False) -> None:
    """Print a plugins file with the exact version, source and sha256 of everything installed."""
    from lbctl.ops import environment

    ctx.obj.render(environment.freeze(ctx.obj.context, with_config=with_config, include_secrets=include_secrets,
                                      bundle=bundle, bundle_all=bundle_all))


def sync(ctx: typer.Context, file: Path,
         prune: Annotated[bool, typer.Option("--prune", help="Uninstall what the file does not list.")] = False,
         dry_run: DryRun = False) -> None:
    """Make the environment match a plugins file."""
    from lbctl.ops import sync as op

    ctx.obj.render(op.sync(ctx.obj.context, file, prune=prune, dry_run=dry_run))


def verify(ctx: typer.Context, ids: Annotated[Optional[List[str]], typer.Argument(metavar="[ID...]")] = None) -> None:
    """Recompute the sha256 of installed packages and compare them with the records."""
    from lbctl.ops import environment

    ctx.obj.render(environment.verify(ctx.obj.context, ids or []))


@cache_app.command("dir")
def cache_dir(ctx: typer.Context) -> None:
    """Print the cache directory."""
    from lbctl.ops import environment

    ctx.obj.render(environment.cache(ctx.obj.context, "dir"))


@cache_app.command("list")
def cache_list(ctx: typer.Context) -> None:
    """List cached packages."""
    from lbctl.ops import environment

    ctx.obj.render(environment.cache(ctx.obj.context, "list"))


@cache_app.command("clear")
def cache_clear(ctx: typer.Context) -> None:
    """Delete every cached package."""
    from lbctl.ops import environment

    ctx.obj.render(environment.cache(ctx.obj.context, "clear"))
