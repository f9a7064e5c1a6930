"""Package commands: install, uninstall, list, show, inspect, enable, disable, outdated, update, download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from lbctl.cli.options import DryRun, Force, PluginId, PluginIds, Pre


EXAMPLES = {
    "install": "Examples:  lbctl install langbot-team/WeatherNow  ·  lbctl install 'acme/echo>=1.2,<2'  ·  "
               "lbctl install ./acme-echo-1.0.0.lbpkg  ·  lbctl install -r plugins.toml  ·  "
               "lbctl --target prod install acme/echo==1.2.0",
    "update": "Examples:  lbctl update --all  ·  lbctl update acme/echo --to 1.3.0  ·  lbctl update --all --dry-run",
    "uninstall": "Examples:  lbctl uninstall acme/echo  ·  lbctl uninstall acme/echo --purge --yes",
    "download": "Examples:  lbctl download acme/echo==1.2.0 -d vendor  ·  "
                "lbctl download acme/echo -d bundle --with-deps --python-version 3.11",
    "rollback": "Example:  lbctl rollback acme/echo --dry-run",
    "pin": "Example:  lbctl pin acme/echo --reason '2.x needs a new API key'",
}


def register(app: typer.Typer) -> None:
    for name, fn, hidden in (
        ("install", install, False), ("uninstall", uninstall, False), ("remove", uninstall, True),
        ("list", list_, False), ("ls", list_, True), ("show", show, False), ("inspect", inspect, False),
        ("enable", enable, False), ("disable", disable, False), ("outdated", outdated, False),
        ("update", update, False), ("upgrade", update, True), ("download", download, False),
        ("pin", pin, False), ("unpin", unpin, False), ("rollback", rollback, False),
    ):
        app.command(name, hidden=hidden, epilog=EXAMPLES.get(name))(fn)


def install(
    ctx: typer.Context,
    specs: Annotated[Optional[List[str]], typer.Argument(metavar="SPEC...", help="author/name[==V], a .lbpkg path, or a URL.")] = None,
    requirements: Annotated[Optional[Path], typer.Option("-r", "--requirements", help="Install what a plugins file lists.")] = None,
    force: Force = False, pre: Pre = False, dry_run: DryRun = False,
    no_start: Annotated[bool, typer.Option("--no-start", help="Do not wait for a live runtime host.")] = False,
) -> None:
    """Install plugins from the marketplace, a local .lbpkg file, or a URL."""
    from lbctl.ops import install as op

    ctx.obj.render(op.install(ctx.obj.context, specs or [], force=force, pre=pre, dry_run=dry_run,
                              requirements=str(requirements) if requirements else None, start=not no_start))


def uninstall(ctx: typer.Context, ids: PluginIds, purge: Annotated[bool, typer.Option("--purge", help="Also delete config and stored data.")] = False,
              dry_run: DryRun = False) -> None:
    """Remove plugins; their config and data are kept unless --purge."""
    from lbctl.ops import manage

    ctx.obj.render(manage.uninstall(ctx.obj.context, ids, purge=purge, dry_run=dry_run))


def list_(ctx: typer.Context,
          source: Annotated[Optional[str], typer.Option("--source", help="marketplace, local or url.")] = None,
          outdated: Annotated[bool, typer.Option("--outdated", help="Only plugins with a newer marketplace version.")] = False) -> None:
    """List installed plugins."""
    from lbctl.ops import query

    ctx.obj.render(query.list_plugins(ctx.obj.context, source=source, outdated=outdated))


def show(ctx: typer.Context, plugin_id: PluginId) -> None:
    """Show an installed plugin: manifest, components, provenance, config."""
    from lbctl.ops import query

    ctx.obj.render(query.show(ctx.obj.context, plugin_id))


def inspect(ctx: typer.Context, file: Annotated[str, typer.Argument(metavar="FILE.lbpkg")]) -> None:
    """Validate a .lbpkg file without installing it and show what it contains."""
    from lbctl.ops import query

    ctx.obj.render(query.inspect(ctx.obj.context, file))


def enable(ctx: typer.Context, ids: PluginIds) -> None:
    """Enable plugins (a disabled plugin stays installed but is not run)."""
    from lbctl.ops import manage

    ctx.obj.render(manage.set_enabled(ctx.obj.context, ids, enabled=True))


def disable(ctx: typer.Context, ids: PluginIds) -> None:
    """Disable plugins without uninstalling them."""
    from lbctl.ops import manage

    ctx.obj.render(manage.set_enabled(ctx.obj.context, ids, enabled=False))


def outdated(ctx: typer.Context, exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when anything is outdated.")] = False) -> None:
    """List marketplace installs that have a newer version."""
    from lbctl.ops import update as op

    ctx.obj.render(op.outdated(ctx.obj.context, exit_code=exit_code))


def update(
    ctx: typer.Context,
    ids: Annotated[Optional[List[str]], typer.Argument(metavar="[ID...]", help="Plugins to update.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Update every marketplace install.")] = False,
    to: Annotated[Optional[str], typer.Option("--to", help="Version spec to update to.")] = None,
    exclude: Annotated[Optional[List[str]], typer.Option("--exclude", help="Skip this id (repeatable).")] = None,
    pre: Pre = False, dry_run: DryRun = False,
) -> None:
    """Update marketplace installs (local and url installs are never updated)."""
    from lbctl.ops import update as op

    ctx.obj.render(op.update(ctx.obj.context, ids or [], all_=all_, to=to, exclude=exclude or [], pre=pre,
                             dry_run=dry_run))


def download(
    ctx: typer.Context,
    specs: Annotated[List[str], typer.Argument(metavar="SPEC...")],
    dest: Annotated[Path, typer.Option("-d", "--dest", help="Directory to save packages in.")] = Path("."),
    pre: Pre = False,
    with_deps: Annotated[bool, typer.Option("--with-deps", help="Also save every requirement as wheels in DIR/wheels.")] = False,
    python_version: Annotated[Optional[str], typer.Option("--python-version", metavar="X.Y", help="Wheels for this Python (with --with-deps; default: the runtime's).")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", metavar="TAG", help="Wheels for this platform tag (with --with-deps).")] = None,
    allow_sdist: Annotated[bool, typer.Option("--allow-sdist", help="Build wheels from source distributions where no wheel is published (with --with-deps; runs their build code).")] = False,
) -> None:
    """Save packages as DIR/author-name-version.lbpkg without installing them."""
    from lbctl.ops import download as op

    ctx.obj.render(op.download(ctx.obj.context, specs, dest, pre=pre, with_deps=with_deps,
                               python_version=python_version, platform=platform, allow_sdist=allow_sdist))


def pin(ctx: typer.Context, ids: PluginIds,
        reason: Annotated[Optional[str], typer.Option("--reason", help="Why (shown by outdated and update).")] = None) -> None:
    """Hold plugins at their installed version: update --all, outdated and sync leave them alone."""
    from lbctl.ops import pins

    ctx.obj.render(pins.pin(ctx.obj.context, ids, reason=reason))


def unpin(ctx: typer.Context, ids: PluginIds) -> None:
    """Let pinned plugins be updated again."""
    from lbctl.ops import pins

    ctx.obj.render(pins.pin(ctx.obj.context, ids, pinned=False))


def rollback(ctx: typer.Context, plugin_id: PluginId, dry_run: DryRun = False) -> None:
    """Put back the package that the last install, update or downgrade replaced (config is kept)."""
    from lbctl.ops import pins

    ctx.obj.render(pins.rollback(ctx.obj.context, plugin_id, dry_run=dry_run))
