from __future__ import annotations

import logging
from typing import AsyncGenerator

from langbot_plugin.api.definition.components.command.command import Command
from langbot_plugin.api.entities.builtin.command.context import CommandReturn, ExecuteContext

logger = logging.getLogger(__name__)


class Fail(Command):
    async def initialize(self):
        await super().initialize()

        @self.subcommand(name="now", help="answer once, then raise RuntimeError", usage="fail now")
        async def now(self, context: ExecuteContext) -> AsyncGenerator[CommandReturn, None]:
            yield CommandReturn(text="about to fail")
            logger.warning("faulty fail now is raising")
            raise RuntimeError("fail now, as asked")
