from __future__ import annotations

import random
from typing import Any

from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.provider import session as provider_session


def roll(count: int, sides: int) -> list[int]:
    return [random.randint(1, sides) for _ in range(max(1, min(count, 100)))]


class Roll(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        config = self.plugin.get_config()
        faces = roll(int(params.get("count", 1)), int(config.get("sides", 6)))
        return {"faces": faces, "total": sum(faces)}
