from __future__ import annotations

import logging

from langbot_plugin.api.definition.plugin import BasePlugin

logger = logging.getLogger(__name__)


class Faulty(BasePlugin):
    async def initialize(self) -> None:
        logger.info("faulty initialize() called")
