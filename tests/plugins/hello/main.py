from __future__ import annotations

import logging

from langbot_plugin.api.definition.plugin import BasePlugin

logger = logging.getLogger(__name__)


class Hello(BasePlugin):
    async def initialize(self) -> None:
        logger.info("hello initialize() called, config=%r", self.get_config())
        await self.set_plugin_storage("boot_marker", b"booted")
        value = await self.get_plugin_storage("boot_marker")
        keys = sorted(await self.get_plugin_storage_keys())
        logger.info("hello storage round-trip: %r keys=%r", value, keys)
