from __future__ import annotations

from typing import Any

import mmh3
from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.provider import session as provider_session


class Murmur(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        return {"hash": mmh3.hash(params["text"]), "from": [mmh3.__file__]}
