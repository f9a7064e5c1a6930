from __future__ import annotations

from typing import Any

import humanize
import slugify
from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.provider import session as provider_session


class Slug(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        text = params["text"]
        return {"slug": slugify.slugify(text), "size": humanize.naturalsize(len(text.encode())),
                "from": [slugify.__file__, humanize.__file__]}
