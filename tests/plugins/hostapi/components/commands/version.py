from __future__ import annotations

from typing import AsyncGenerator

from langbot_plugin.api.definition.components.command.command import Command
from langbot_plugin.api.entities.builtin.command.context import CommandReturn, ExecuteContext


class Version(Command):
    async def initialize(self):
        await super().initialize()

        @self.subcommand(name="*", help="the host's version", usage="version")
        async def version(self, context: ExecuteContext) -> AsyncGenerator[CommandReturn, None]:
            yield CommandReturn(text=f"LangBot version: {await self.plugin.get_langbot_version()}")
