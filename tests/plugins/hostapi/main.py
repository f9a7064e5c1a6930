from __future__ import annotations

import logging

from langbot_plugin.api.definition.plugin import BasePlugin

logger = logging.getLogger(__name__)


class HostApi(BasePlugin):
    async def initialize(self) -> None:
        logger.info("hostapi initialize() called, host version %s", await self.get_langbot_version())
