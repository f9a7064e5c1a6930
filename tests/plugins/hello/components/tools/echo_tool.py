from __future__ import annotations

import logging
from typing import Any

from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.provider import session as provider_session

logger = logging.getLogger(__name__)


class EchoTool(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        text = params.get("text", "")
        logger.info("hello echo_tool called with %r", text)
        return {"echo": text, "greeting": self.plugin.get_config().get("greeting")}
