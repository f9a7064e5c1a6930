"""help exit-codes, config-path, doctor, completion."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated

import typer

help_app = typer.Typer(help="Reference help topics.", no_args_is_help=True)


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    app.add_typer(help_app, name="help")
    app.command("config-path")(config_path)
    app.command("doctor")(doctor)
    app.command("completion")(completion)
    if "_LBCTL_COMPLETE" in os.environ:  # the shell is asking for completions: see lbctl.cli.completion
        from lbctl.cli.completion import install

        install()


@help_app.command("exit-codes")
def exit_codes(ctx: typer.Context) -> None:
    """Print the table of exit codes."""
    from lbctl.ops import info

    ctx.obj.render(info.exit_codes())


def config_path(ctx: typer.Context) -> None:
    """Print where the user config file is (TOML; keys named like the long options)."""
    from lbctl.ops import info

    ctx.obj.render(info.config_path(ctx.obj.environ))


def doctor(ctx: typer.Context) -> None:
    """Check the environment, the marketplace and the runtime; exit 1 when any check fails."""
    from lbctl.ops import doctor as op

    ctx.obj.render(op.doctor(ctx.obj.context))


def completion(ctx: typer.Context, shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the shell completion script for bash, zsh or fish."""
    from lbctl.cli.completion import script
    from lbctl.models import Result

    text = script(shell.value)
    ctx.obj.render(Result("completion", "completion", {"shell": shell.value, "script": text}, text=text))
