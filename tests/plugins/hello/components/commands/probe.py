from __future__ import annotations

from typing import AsyncGenerator

from langbot_plugin.api.definition.components.command.command import Command
from langbot_plugin.api.entities.builtin.command.context import CommandReturn, ExecuteContext


class Probe(Command):
    async def initialize(self):
        await super().initialize()

        @self.subcommand(name="ping", help="answer pong twice", usage="probe ping [WORDS]")
        async def ping(self, context: ExecuteContext) -> AsyncGenerator[CommandReturn, None]:
            yield CommandReturn(text="pong 1")
            yield CommandReturn(text=f"pong 2 params={context.crt_params}")
