"""help exit-codes, config-path, doctor, completion."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated, List, Optional

import typer

class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    app.command("help")(help_)
    app.command("config-path")(config_path)
    app.command("doctor")(doctor)
    app.command("completion")(completion)
    if "_LBCTL_COMPLETE" in os.environ:  # the shell is asking for completions: see lbctl.cli.completion
        from lbctl.cli.completion import install

        install()


def help_(ctx: typer.Context,
          topic: Annotated[Optional[List[str]], typer.Argument(metavar="[COMMAND...|exit-codes]")] = None) -> None:
    """Show the help of a command (`lbctl help config set`), or the table of exit codes (`lbctl help exit-codes`)."""
    from lbctl.ops import info

    if topic == ["exit-codes"]:
        ctx.obj.render(info.exit_codes())
        return
    ctx.obj.render(info.command_help(command_help(ctx, topic or [])))


def command_help(ctx: typer.Context, words: list[str]) -> str:
    """The --help text of the command that `words` name (raises UsageError with a suggestion when none does)."""
    from lbctl.errors import UsageError
    from lbctl.ids import suggestion

    command, context = ctx.parent.command, ctx.parent
    for word in words:
        sub = command.get_command(context, word) if hasattr(command, "get_command") else None
        if sub is None:
            known = command.list_commands(context) if hasattr(command, "list_commands") else []
            raise UsageError(f"No command {' '.join(words)!r}", hint=suggestion(word, known) or "See `lbctl --help`.")
        context = typer.Context(sub, info_name=word, parent=context)
        command = sub
    return command.get_help(context)


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
