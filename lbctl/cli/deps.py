"""deps download, index serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

deps_app = typer.Typer(help="Plugin dependencies (requirements.txt) as wheels, for offline installs.",
                       no_args_is_help=True)
index_app = typer.Typer(help="Serve a wheelhouse as a package index for a LangBot runtime.", no_args_is_help=True)

Dest = Annotated[Path, typer.Option("-d", "--dest", help="Directory; wheels go to DIR/wheels.")]
PythonVersion = Annotated[Optional[str], typer.Option("--python-version", metavar="X.Y",
                                                      help="Wheels for this Python (default: the runtime's).")]
Platform = Annotated[Optional[str], typer.Option("--platform", metavar="TAG",
                                                 help="Wheels for this platform tag (default: this machine's).")]
AllowSdist = Annotated[bool, typer.Option("--allow-sdist", help="Build wheels from source distributions where no "
                                          "wheel is published (runs their build code; this Python only).")]


def register(app: typer.Typer) -> None:
    app.add_typer(deps_app, name="deps")
    app.add_typer(index_app, name="index")


@deps_app.command("download")
def download(ctx: typer.Context, dest: Dest, python_version: PythonVersion = None, platform: Platform = None,
             allow_sdist: AllowSdist = False) -> None:
    """Save the requirements of every installed plugin as wheels under DIR/wheels (published wheels only,
    unless --allow-sdist)."""
    from lbctl.ops import deps

    ctx.obj.render(deps.download(ctx.obj.context, dest, python_version=python_version, platform=platform,
                                 allow_sdist=allow_sdist))


@index_app.command("serve")
def serve(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A wheelhouse: DIR/wheels, or DIR itself.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
) -> None:
    """Serve DIR as a PEP 503 index (LANGBOT_PLUGIN_PYPI_INDEX_URL=http://HOST:PORT/simple/) until stopped."""
    import logging

    from lbctl.ops import deps

    ctx.obj.renderer.setup_logging()
    if ctx.obj.renderer.level >= 0:
        logging.getLogger("lbctl.index").setLevel(logging.INFO)
    ctx.obj.render(deps.serve_index(ctx.obj.context, directory, host=host, port=port))
