from __future__ import annotations

import random
from typing import AsyncGenerator

from langbot_plugin.api.definition.components.command.command import Command
from langbot_plugin.api.entities.builtin.command.context import CommandReturn, ExecuteContext


class DiceCommand(Command):
    async def initialize(self):
        await super().initialize()

        @self.subcommand(name="roll", help="roll N dice", usage="dice roll N")
        async def roll(self, context: ExecuteContext) -> AsyncGenerator[CommandReturn, None]:
            sides = int(self.plugin.get_config().get("sides", 6))
            count = int(context.crt_params[0]) if context.crt_params else 1
            faces = [random.randint(1, sides) for _ in range(max(1, min(count, 100)))]
            yield CommandReturn(text=f"rolled {faces} (total {sum(faces)})")
