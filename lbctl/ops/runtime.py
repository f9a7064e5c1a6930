"""The runtime host and the live commands that talk to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

from lbctl.context import Context
from lbctl.errors import PluginFailedError, UsageError
from lbctl.models import Result
from lbctl.targets import open_one
from lbctl.targets.base import Target


def _live(ctx: Context, plugin_id: str | None = None) -> tuple[Target, object, str | None]:
    """The target, its live side (the local runtime host, or a LangBot instance) and the plugin id as typed
    made whole (a bare name that one installed plugin has)."""
    target = open_one(ctx)
    return target, target.host(), target.expand([plugin_id])[0] if plugin_id else None


def serve(ctx: Context, *, connect: str | None = None, token_env: str | None = None,
          pypi_index_url: str | None = None, wheelhouse: Path | None = None,
          on_event: Callable[[dict], None] | None = None) -> Result:
    """Host the runtime until SIGTERM/SIGINT; with `wheelhouse`, a local index serves plugin dependencies."""
    from lbctl.ops.deps import runtime_index
    from lbctl.runtime.host import serve as run_host

    open_one(ctx).check_supported("runtime serve")
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UsageError(f"The environment variable {token_env} is not set", hint="It must hold the runtime's control token.")
    with runtime_index(wheelhouse, pypi_index_url, connect) as index_url:
        code = run_host(ctx.env, connect=connect, token=token, pypi_index_url=index_url, on_event=on_event)
    return Result("runtime serve", "none", {"stopped": True}, exit_code=code)


def status(ctx: Context) -> Result:
    return Result("runtime status", "runtime_status", _live(ctx)[1].status())


def _log_source(plugin_id: str | None, host: bool) -> str | None:
    if (plugin_id is None) == (not host):
        raise UsageError("Name a plugin, or pass --host for the host's own log", hint="See `lbctl logs --help`.")
    return plugin_id


def logs(ctx: Context, plugin_id: str | None, *, lines: int = 100, host: bool = False) -> Result:
    """A plugin's log lines, or with `host` every line the runtime wrote (each with the plugin it belongs to)."""
    _, client, plugin_id = _live(ctx, plugin_id)
    return Result("logs", "logs", {"lines": client.logs(_log_source(plugin_id, host), lines)})


def follow(ctx: Context, plugin_id: str | None, *, lines: int = 10, host: bool = False) -> Iterator[dict]:
    _, client, plugin_id = _live(ctx, plugin_id)
    return client.follow(_log_source(plugin_id, host), lines)


def restart(ctx: Context, plugin_id: str) -> Result:
    """Exit 9 (spec §6) when the plugin does not start again."""
    _, client, plugin_id = _live(ctx, plugin_id)
    outcome = client.restart(plugin_id, timeout=ctx.settings.timeout)
    if outcome.get("state") != "failed":
        return Result("restart", "live_states", {"plugins": [outcome]})
    error = PluginFailedError(f"{plugin_id}: {outcome.get('error')}", plugin=plugin_id,
                              hint=f"See `lbctl logs {plugin_id}`.")
    return Result("restart", "live_states", {"plugins": [outcome]}, errors=(error.to_json(),), exit_code=9)


def tools(ctx: Context, plugin_id: str | None = None) -> Result:
    _, client, plugin_id = _live(ctx, plugin_id)
    return Result("tools", "tools", {"tools": client.tools(plugin_id)})


def commands(ctx: Context, plugin_id: str | None = None) -> Result:
    _, client, plugin_id = _live(ctx, plugin_id)
    return Result("commands", "commands", {"commands": client.commands(plugin_id)})


def call_tool(ctx: Context, plugin_id: str, tool: str, args: str | None) -> Result:
    import json

    try:
        parsed = json.loads(args) if args else {}
    except ValueError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UsageError("--args must be a JSON object")
    _, client, plugin_id = _live(ctx, plugin_id)
    result = client.call_tool(plugin_id, tool, parsed)
    return Result("call-tool", "call_result", {"result": result})


def run_command(ctx: Context, plugin_id: str, text: str, *, pipeline: str | None = None) -> Result:
    """Run a plugin's command; on a LangBot target through a pipeline (`pipeline` is its uuid)."""
    target, client, plugin_id = _live(ctx, plugin_id)
    if pipeline is not None and target.kind == "local":
        raise UsageError("--pipeline is for a LangBot target: locally a command runs directly")
    args = (pipeline,) if pipeline is not None else ()
    return Result("run-command", "call_result", {"result": client.run_command(plugin_id, text, *args)})
