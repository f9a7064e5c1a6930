"""What lbctl answers when a plugin calls one of LangBot's host APIs (runtime-control-protocol.md §9.6).

lbctl runs plugins without LangBot: it has no bots, models, knowledge bases, parsers, vector store, sandbox
boxes or agent runs. Asked to list them, it answers the honest empty list; asked to use one, it answers as
LangBot does for an id it does not know. Either way the plugin gets an answer at once, never a timeout.
"""

from __future__ import annotations

import copy
from typing import Final

from lbctl import __version__
from lbctl.runtime.protocol import HostAPIError

VERSION: Final = {"version": f"lbctl {__version__}", "host": "lbctl", "api_features": []}
EMPTY: Final[dict[str, dict]] = {
    "get_langbot_version": VERSION,
    "get_bots": {"bots": []},
    "get_llm_models": {"llm_models": []},
    "list_knowledge_bases": {"knowledge_bases": []},
    "list_pipeline_knowledge_bases": {"knowledge_bases": []},
    "list_parsers": {"parsers": []},
    "list_boxes": {"items": []},
    "get_box_status": {"available": False, "enabled": False, "reason": "lbctl provides no sandbox boxes"},
    "vector_search": {"results": []},
    "vector_list": {"items": [], "total": 0},
    "vector_delete": {"count": 0},
    "runner_list": {"items": []},
}
_ABSENT: Final = (
    ("bot", "bot_uuid", ("get_bot_info", "send_message", "call_platform_api")),
    ("LLM model", "llm_model_uuid", ("invoke_llm", "invoke_llm_stream", "count_tokens")),
    ("embedding model", "embedding_model_uuid", ("invoke_embedding",)),
    ("rerank model", "rerank_model_uuid", ("invoke_rerank",)),
    ("knowledge base", "kb_id", ("retrieve_knowledge", "retrieve_knowledge_base")),
    ("knowledge file", "storage_path", ("get_knowledge_file_stream",)),
    ("parser plugin", "plugin_name", ("invoke_parser",)),
    ("vector store", None, ("vector_upsert",)),
    ("sandbox box", None, ("acquire_box", "bind_box", "import_box_attachments", "export_box_files")),
    ("tool routing between plugins", None, ("call_tool", "get_tool_detail")),
    ("agent run", "run_id", (
        "get_prompt", "history_page", "history_search", "event_get", "event_page", "steering_pull", "reply_stream",
        "run_get", "run_list", "run_events_page", "run_cancel", "run_append_result", "run_finalize",
        "state_get", "state_set", "state_delete", "state_list")),
    ("agent runtime registry", None, (
        "run_claim", "run_renew_claim", "run_release_claim", "runtime_register", "runtime_heartbeat",
        "runtime_list", "runtime_reconcile", "run_stats", "runtime_stats", "runner_stats")),
)  # fmt: skip
ABSENT: Final[dict[str, tuple[str, str | None]]] = {
    action: (what, key) for what, key, actions in _ABSENT for action in actions
}


def answer(action: str, data: dict) -> dict:
    """The answer to a host API lbctl has no real data for, or HostAPIError with the reason."""
    if action in EMPTY:
        return copy.deepcopy(EMPTY[action])
    if action not in ABSENT:
        raise HostAPIError(f"NotImplementedError: host API '{action}' is not provided by lbctl")
    what, key = ABSENT[action]
    named = f" {data[key]!r}" if key and data.get(key) is not None else ""
    raise HostAPIError(f"LookupError: no {what}{named}: lbctl runs plugins without LangBot and has none")
