from __future__ import annotations

import logging

from langbot_plugin.api.definition.plugin import BasePlugin

logger = logging.getLogger(__name__)


class Broken(BasePlugin):
    async def initialize(self) -> None:
        logger.warning("broken initialize() called")
        raise RuntimeError("broken refuses to start")
