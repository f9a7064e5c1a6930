"""config show|get|set|unset|edit|export|import."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, List

import typer

from lbctl.cli.options import PluginId
from lbctl.cli.private import private_stdout
from lbctl.errors import UsageError
from lbctl.fsutil import read_text_file

config_app = typer.Typer(help="Show and change plugin configuration.", no_args_is_help=True)
Force = Annotated[bool, typer.Option("--force", help="Store keys the schema does not know.")]


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show")
def show(ctx: typer.Context, plugin_id: PluginId) -> None:
    """Show every config item: NAME, TYPE, REQUIRED, DEFAULT, VALUE (secrets as ***)."""
    from lbctl.ops import config

    ctx.obj.render(config.show(ctx.obj.context, plugin_id))


@config_app.command("get")
def get(ctx: typer.Context, plugin_id: PluginId, key: str,
        reveal: Annotated[bool, typer.Option("--reveal", help="Print a secret value in clear.")] = False) -> None:
    """Print one raw value."""
    from lbctl.ops import config

    ctx.obj.render(config.get(ctx.obj.context, plugin_id, key, reveal=reveal))


@config_app.command("set", epilog="Examples:  lbctl config set acme/echo greeting=hi count=3  ·  "
                                  "printf %s \"$TOKEN\" | lbctl config set acme/echo api_key=-  ·  "
                                  "lbctl config set acme/echo avatar=@face.png")
def set_(ctx: typer.Context, plugin_id: PluginId,
         assignments: Annotated[List[str], typer.Argument(metavar="KEY=VALUE...", help="KEY=- reads stdin; KEY=@path stores a file.")],
         force: Force = False) -> None:
    """Set values, validated against the plugin's schema."""
    from lbctl.configschema import read_value
    from lbctl.ops import config

    ctx.obj.render(config.set_values(ctx.obj.context, plugin_id, assignments, force=force,
                                     read_stdin=lambda: read_value(sys.stdin)))


@config_app.command("unset")
def unset(ctx: typer.Context, plugin_id: PluginId, keys: Annotated[List[str], typer.Argument(metavar="KEY...")]) -> None:
    """Remove stored values."""
    from lbctl.ops import config

    ctx.obj.render(config.unset(ctx.obj.context, plugin_id, keys))


@config_app.command("edit")
def edit(ctx: typer.Context, plugin_id: PluginId) -> None:
    """Edit the config as TOML in $VISUAL / $EDITOR; an invalid edit is reopened on a terminal, else refused."""
    from lbctl.ops import config

    reopen = sys.stdin.isatty() and sys.stderr.isatty()
    ctx.obj.render(config.edit(ctx.obj.context, plugin_id, editor=run_editor, reopen=reopen))


@config_app.command("export")
def export(ctx: typer.Context, plugin_id: PluginId,
           include_secrets: Annotated[bool, typer.Option("--include-secrets", help="Include secret values.")] = False) -> None:
    """Print the config as TOML (secrets left out unless asked)."""
    from lbctl.ops import config

    if include_secrets:
        private_stdout()
    ctx.obj.render(config.export(ctx.obj.context, plugin_id, include_secrets=include_secrets))


@config_app.command("import")
def import_(ctx: typer.Context, plugin_id: PluginId, file: Path,
            replace: Annotated[bool, typer.Option("--replace", help="Replace instead of merging.")] = False,
            force: Force = False) -> None:
    """Read values from a TOML file (merged into the stored config by default)."""
    from lbctl.ops import config

    ctx.obj.render(config.import_(ctx.obj.context, plugin_id, file, replace=replace, force=force))


def run_editor(text: str) -> str:
    import shlex
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UsageError("No editor: set $VISUAL or $EDITOR", hint="Or use `lbctl config export` / `config import`.")
    fd, name = tempfile.mkstemp(suffix=".toml", prefix="lbctl-config-")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        if subprocess.run([*shlex.split(editor), str(path)]).returncode != 0:
            raise UsageError("The editor exited with an error; nothing was saved")
        return read_text_file(path, 16 * 1024 * 1024, "file")  # the editor may have left a FIFO or a device
    finally:
        path.unlink(missing_ok=True)
