"""target add|list|show|remove|use|login."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

target_app = typer.Typer(help="Name LangBot instances to manage with --target.", no_args_is_help=True)
Name = Annotated[str, typer.Argument(metavar="NAME", help="A target name.")]


def register(app: typer.Typer) -> None:
    app.add_typer(target_app, name="target")


@target_app.command("add", epilog="Examples:  lbctl target add prod https://bot.example.com --api-key-env PROD_KEY  ·  "
                                  "echo \"$KEY\" | lbctl target login prod  ·  lbctl --target prod list")
def add(ctx: typer.Context, name: Name, url: Annotated[str, typer.Argument(metavar="URL", help="LangBot's base URL, e.g. http://127.0.0.1:5300.")],
        api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", metavar="VAR", help="Read the API key from this environment variable.")] = None,
        label: Annotated[Optional[List[str]], typer.Option("--label", metavar="KEY=VALUE", help="A label to select it by (repeatable): --target KEY=VALUE.")] = None) -> None:
    """Add (or redefine) a LangBot target. The API key is never given on the command line."""
    from lbctl.ops import target

    ctx.obj.render(target.add(ctx.obj.context, name, url, api_key_env=api_key_env, labels=label or []))


@target_app.command("label", epilog="Examples:  lbctl target label prod env=prod region=eu  ·  lbctl target label prod region-  ·  "
                                    "lbctl --target env=prod list")
def label(ctx: typer.Context, name: Name,
          changes: Annotated[List[str], typer.Argument(metavar="KEY=VALUE|KEY-...", help="Set a label, or remove one with KEY-.")]) -> None:
    """Set or remove a target's labels; `--target KEY=VALUE` then selects every target with that label."""
    from lbctl.ops import target

    ctx.obj.render(target.label(ctx.obj.context, name, changes))


@target_app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the targets with their labels, the default one marked."""
    from lbctl.ops import target

    ctx.obj.render(target.list_targets(ctx.obj.context))


@target_app.command("show")
def show(ctx: typer.Context, name: Annotated[Optional[str], typer.Argument(metavar="[NAME]")] = None) -> None:
    """URL, reachable, authenticated, LangBot version, runtime connected, marketplace, what the API allows."""
    from lbctl.ops import target

    ctx.obj.render(target.show(ctx.obj.context, name))


@target_app.command("remove")
def remove(ctx: typer.Context, name: Name) -> None:
    """Forget a target and its stored credentials."""
    from lbctl.ops import target

    ctx.obj.render(target.remove(ctx.obj.context, name))


@target_app.command("use")
def use(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME|local")]) -> None:
    """Make a target the default from now on (`local` goes back to the environment)."""
    from lbctl.ops import target

    ctx.obj.render(target.use(ctx.obj.context, name))


@target_app.command("login")
def login(ctx: typer.Context, name: Name,
          user: Annotated[Optional[str], typer.Option("--user", metavar="EMAIL", help="Store a LangBot user login instead, used only to read why a task failed.")] = None) -> None:
    """Store the target's API key (read from stdin or a hidden prompt) in a 0600 credentials file."""
    from lbctl.ops import target

    ctx.obj.render(target.login(ctx.obj.context, name, user=user, ask=ctx.obj.ask_secret))
