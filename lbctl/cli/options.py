"""Option and argument aliases shared by commands, defined once."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from lbctl.cli.completion import complete_installed

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]
Force = Annotated[bool, typer.Option("--force", help="Reinstall even if already installed.")]
Pre = Annotated[bool, typer.Option("--pre", help="Allow pre-release versions.")]
PluginIds = Annotated[List[str], typer.Argument(help="Plugin ids (author/name).", metavar="ID...",
                                                autocompletion=complete_installed)]
PluginId = Annotated[str, typer.Argument(help="A plugin id (author/name).", metavar="ID",
                                         autocompletion=complete_installed)]
OptPluginId = Annotated[Optional[str], typer.Argument(help="A plugin id (author/name).", metavar="[ID]",
                                                      autocompletion=complete_installed)]
