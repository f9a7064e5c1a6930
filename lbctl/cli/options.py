"""Option and argument aliases shared by commands, defined once.

Shell completion goes by what a parameter is (lbctl.cli.completion.completer): an argument named `ID`, `[ID]` or
`ID...` completes installed plugin ids, `SPEC...` marketplace ids and files, and so on.
"""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]
Force = Annotated[bool, typer.Option("--force", help="Reinstall even if already installed.")]
Pre = Annotated[bool, typer.Option("--pre", help="Allow pre-release versions.")]
PluginIds = Annotated[List[str], typer.Argument(help="Plugin ids (author/name).", metavar="ID...")]
PluginId = Annotated[str, typer.Argument(help="A plugin id (author/name).", metavar="ID")]
OptPluginId = Annotated[Optional[str], typer.Argument(help="A plugin id (author/name).", metavar="[ID]")]
