"""runtime serve|status, logs, restart, tools, commands, call-tool, run-command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lbctl.cli.options import OptPluginId, PluginId

runtime_app = typer.Typer(help="Host the LangBot Plugin Runtime and inspect it.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runtime_app, name="runtime")
    for name, fn in (("logs", logs), ("restart", restart), ("tools", tools), ("commands", commands),
                     ("call-tool", call_tool), ("run-command", run_command)):
        app.command(name)(fn)


@runtime_app.command("serve")
def serve(
    ctx: typer.Context,
    connect: Annotated[Optional[str], typer.Option("--connect", help="Attach to a dedicated runtime: ws://HOST:PORT/control/ws.")] = None,
    token_env: Annotated[Optional[str], typer.Option("--token-env", help="Environment variable holding the control token.")] = None,
    pypi_index_url: Annotated[Optional[str], typer.Option("--pypi-index-url", help="Package index for plugin dependencies.")] = None,
    wheelhouse: Annotated[Optional[Path], typer.Option(
        "--wheelhouse", metavar="DIR", envvar="LBCTL_WHEELHOUSE",
        help="Serve DIR/wheels (or DIR) on loopback as the runtime's only index (env LBCTL_WHEELHOUSE).")] = None,
) -> None:
    """Run the installed plugins in the foreground (SIGTERM/SIGINT stop everything)."""
    from lbctl.ops import runtime

    ctx.obj.renderer.setup_logging()
    ctx.obj.render(runtime.serve(ctx.obj.context, connect=connect, token_env=token_env, pypi_index_url=pypi_index_url,
                                 wheelhouse=wheelhouse, on_event=ctx.obj.renderer.event))


@runtime_app.command("status")
def status(ctx: typer.Context) -> None:
    """Whether a host is up, the runtime's version, and each plugin's live state."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.status(ctx.obj.context))


def logs(ctx: typer.Context, plugin_id: OptPluginId = None,
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many recent lines.")] = 100,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         host: Annotated[bool, typer.Option("--host", help="The host's log instead: every line of the runtime.")] = False) -> None:
    """Print the log lines a running plugin wrote, or (--host) everything the runtime wrote."""
    from lbctl.ops import runtime

    if follow:
        ctx.obj.renderer.stream(runtime.follow(ctx.obj.context, plugin_id, lines=lines, host=host))
    else:
        ctx.obj.render(runtime.logs(ctx.obj.context, plugin_id, lines=lines, host=host))


def restart(ctx: typer.Context, plugin_id: PluginId) -> None:
    """Restart a running plugin (waits --timeout for it to run again)."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.restart(ctx.obj.context, plugin_id))


def tools(ctx: typer.Context, plugin_id: OptPluginId = None) -> None:
    """List the tools the running plugins offer."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.tools(ctx.obj.context, plugin_id))


def commands(ctx: typer.Context, plugin_id: OptPluginId = None) -> None:
    """List the commands the running plugins offer."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.commands(ctx.obj.context, plugin_id))


def call_tool(ctx: typer.Context, plugin_id: PluginId, tool: str,
              args: Annotated[Optional[str], typer.Option("--args", help="Arguments as a JSON object.")] = None) -> None:
    """Call a running plugin's tool and print what it returns."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.call_tool(ctx.obj.context, plugin_id, tool, args))


def run_command(ctx: typer.Context, plugin_id: PluginId, text: Annotated[str, typer.Argument(metavar="'TEXT'")],
                pipeline: Annotated[Optional[str], typer.Option("--pipeline", metavar="UUID", help="On a LangBot target: the pipeline to run the command through.")] = None) -> None:
    """Run a running plugin's command (e.g. 'dice roll 2') and print its output."""
    from lbctl.ops import runtime

    ctx.obj.render(runtime.run_command(ctx.obj.context, plugin_id, text, pipeline=pipeline))
