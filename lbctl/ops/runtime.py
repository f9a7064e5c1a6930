"""The runtime host and the live commands that talk to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

from lbctl.context import Context
from lbctl.errors import PluginFailedError, UsageError
from lbctl.models import Result


def _client(ctx: Context, timeout: float = 60.0):
    from lbctl.runtime.client import HostClient

    return HostClient(ctx.env.home, timeout=timeout)


def serve(ctx: Context, *, connect: str | None = None, token_env: str | None = None,
          pypi_index_url: str | None = None, wheelhouse: Path | None = None,
          on_event: Callable[[dict], None] | None = None) -> Result:
    """Host the runtime until SIGTERM/SIGINT; with `wheelhouse`, a local index serves plugin dependencies."""
    from lbctl.ops.deps import runtime_index
    from lbctl.runtime.host import serve as run_host

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UsageError(f"The environment variable {token_env} is not set", hint="It must hold the runtime's control token.")
    with runtime_index(wheelhouse, pypi_index_url, connect) as index_url:
        code = run_host(ctx.env, connect=connect, token=token, pypi_index_url=index_url, on_event=on_event)
    return Result("runtime serve", "none", {"stopped": True}, exit_code=code)


def status(ctx: Context) -> Result:
    return Result("runtime status", "runtime_status", _client(ctx).status())


def _log_source(plugin_id: str | None, host: bool) -> str | None:
    if (plugin_id is None) == (not host):
        raise UsageError("Name a plugin, or pass --host for the host's own log", hint="See `lbctl logs --help`.")
    return plugin_id


def logs(ctx: Context, plugin_id: str | None, *, lines: int = 100, host: bool = False) -> Result:
    """A plugin's log lines, or with `host` every line the runtime wrote (each with the plugin it belongs to)."""
    return Result("logs", "logs", {"lines": _client(ctx).logs(_log_source(plugin_id, host), lines)})


def follow(ctx: Context, plugin_id: str | None, *, lines: int = 10, host: bool = False) -> Iterator[dict]:
    return _client(ctx).follow(_log_source(plugin_id, host), lines)


def restart(ctx: Context, plugin_id: str, *, timeout: float = 60.0) -> Result:
    """Exit 9 (spec §6) when the plugin does not start again."""
    outcome = _client(ctx, timeout).restart(plugin_id, timeout=timeout)
    if outcome.get("state") != "failed":
        return Result("restart", "live_states", {"plugins": [outcome]})
    error = PluginFailedError(f"{plugin_id}: {outcome.get('error')}", plugin=plugin_id,
                              hint=f"See `lbctl logs {plugin_id}`.")
    return Result("restart", "live_states", {"plugins": [outcome]}, errors=(error.to_json(),), exit_code=9)


def tools(ctx: Context, plugin_id: str | None = None) -> Result:
    return Result("tools", "tools", {"tools": _client(ctx).tools(plugin_id)})


def commands(ctx: Context, plugin_id: str | None = None) -> Result:
    return Result("commands", "commands", {"commands": _client(ctx).commands(plugin_id)})


def call_tool(ctx: Context, plugin_id: str, tool: str, args: str | None, *, timeout: float = 60.0) -> Result:
    import json

    try:
        parsed = json.loads(args) if args else {}
    except ValueError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UsageError("--args must be a JSON object")
    return Result("call-tool", "call_result", {"result": _client(ctx, timeout).call_tool(plugin_id, tool, parsed)})


def run_command(ctx: Context, plugin_id: str, text: str, *, timeout: float = 60.0) -> Result:
    return Result("run-command", "call_result", {"result": _client(ctx, timeout).run_command(plugin_id, text)})
