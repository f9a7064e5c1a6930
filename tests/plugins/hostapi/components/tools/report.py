from __future__ import annotations

from typing import Any

from langbot_plugin.api.definition.components.tool.tool import Tool
from langbot_plugin.api.entities.builtin.platform import message as platform_message
from langbot_plugin.api.entities.builtin.provider import message as provider_message
from langbot_plugin.api.entities.builtin.provider import session as provider_session


class Report(Tool):
    async def call(self, params: dict[str, Any], session: provider_session.Session, query_id: int) -> dict[str, Any]:
        plugin = self.plugin
        hello = platform_message.MessageChain([platform_message.Plain(text="hi")])
        calls = {
            "get_langbot_version": plugin.get_langbot_version(),
            "get_llm_models": plugin.get_llm_models(),
            "get_bots": plugin.get_bots(),
            "get_bot_info": plugin.get_bot_info("no-such-bot"),
            "send_message": plugin.send_message("no-such-bot", "person", "someone", hello),
            "invoke_llm": plugin.invoke_llm("no-such-model", [provider_message.Message(role="user", content="hi")]),
            "invoke_embedding": plugin.invoke_embedding("no-such-model", ["hi"]),
            "list_knowledge_bases": plugin.list_knowledge_bases(),
            "retrieve_knowledge": plugin.retrieve_knowledge("no-such-kb", "hi"),
            "list_parsers": plugin.list_parsers(),
            "vector_search": plugin.vector_search("no-such-collection", [0.0]),
            "list_boxes": plugin.list_boxes(),
        }
        report = {}
        for name, call in calls.items():
            try:
                report[name] = {"ok": _plain(await call)}
            except Exception as exc:
                report[name] = {"error": str(exc)}
        return report


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value
