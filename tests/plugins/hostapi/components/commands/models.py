from __future__ import annotations

from typing import AsyncGenerator

from langbot_plugin.api.definition.components.command.command import Command
from langbot_plugin.api.entities.builtin.command.context import CommandReturn, ExecuteContext
from langbot_plugin.api.entities.builtin.platform import message as platform_message


class Models(Command):
    async def initialize(self):
        await super().initialize()

        @self.subcommand(name="*", help="the host's LLM models", usage="models")
        async def models(self, context: ExecuteContext) -> AsyncGenerator[CommandReturn, None]:
            await context.reply(platform_message.MessageChain([platform_message.Plain(text="asking the host")]))
            await context.set_query_var("asked", True)
            models = await self.plugin.get_llm_models()
            asked = await context.get_query_var("asked")
            yield CommandReturn(text=f"{len(models)} models: {models} (asked={asked})")
