from __future__ import annotations

import logging
from typing import Any

from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.provider import session as provider_session

logger = logging.getLogger(__name__)


class Explode(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        logger.warning("faulty explode called with %r", params)
        raise ValueError(f"explode refuses {params.get('text', '')!r}")
