"""help exit-codes, config-path, doctor, completion."""

from __future__ import annotations

import typer

help_app = typer.Typer(help="Reference help topics.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(help_app, name="help")
    app.command("config-path")(config_path)


@help_app.command("exit-codes")
def exit_codes(ctx: typer.Context) -> None:
    """Print the table of exit codes."""
    from lbctl.ops import info

    ctx.obj.render(info.exit_codes())


def config_path(ctx: typer.Context) -> None:
    """Print where the user config file is (TOML; keys named like the long options)."""
    from lbctl.ops import info

    ctx.obj.render(info.config_path(ctx.obj.environ))
