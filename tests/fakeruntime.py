"""A stand-in for `lbp rt -s` that speaks the control protocol over stdio, for the host's error paths.

Run as `python tests/fakeruntime.py [lbp rt flags]`. Every notable event is appended as one JSON line to
$FAKE_RUNTIME_LOG. A plugin's config drives its behaviour:
  {"fake": "fail"}   apply answers state "failed" (as a failed dependency preparation does)
  {"file": KEY}      on apply, ask the host for that config file
  {"fake": "slow"}   list_plugins takes 1 s to answer and remove_plugin_installation 2 s
Tool "die" makes the runtime exit at once; a command whose text contains "boom" ends in an error frame, one
with "raise" fails as a plugin that raised does. As the real runtime, it starts one worker process per plugin
in the artifact's directory, and worker and runtime log in the SDK's format to the same stderr.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lbctl.runtime.protocol import ActionFailed, HostAPIError, Peer, StdioTransport  # noqa: E402

LOG = os.environ.get("FAKE_RUNTIME_LOG")
ARTIFACTS = Path("data/plugin-runtime/artifacts/sha256")
WORKER = "import sys, time\nprint(sys.argv[1], file=sys.stderr, flush=True)\ntime.sleep(3600)\n"


def record(**event) -> None:
    if LOG:
        with open(LOG, "a") as stream:
            stream.write(json.dumps(event) + "\n")


def log(level: str, text: str) -> None:
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"[{stamp}.000] fakeruntime.py (1) - [{level}] : {text}", file=sys.stderr, flush=True)


def plugin_id(package: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        meta = yaml.safe_load(archive.read("manifest.yaml"))["metadata"]
    return f"{meta['author']}/{meta['name']}"


class FakeRuntime:
    def __init__(self):
        self.peer: Peer | None = None
        self.configured = False
        self.installations: dict[str, dict] = {}
        self.workers: dict[str, subprocess.Popen] = {}

    async def handle(self, action: str, data: dict, context: dict | None) -> dict:
        if action == "set_runtime_config":
            self.configured = True
            record(event="handshake", data=data)
            return {}
        if not self.configured:
            raise HostAPIError("ValueError: SET_RUNTIME_CONFIG must complete before control actions")
        method = getattr(self, f"do_{action}", None)
        if method is None:
            raise HostAPIError(f"ValueError: Action {action} not found")
        return await method(data, context or {})

    async def do_apply_plugin_installation(self, data: dict, context: dict) -> dict:
        digest, uuid = context["artifact_digest"], context["installation_uuid"]
        cached = ARTIFACTS / digest / "package.lbpkg"
        if data.get("artifact_file_key"):
            (ARTIFACTS / digest / "code").mkdir(parents=True, exist_ok=True)
            cached.write_bytes(self.peer.files.pop(data["artifact_file_key"]))
            record(event="upload", digest=digest)
        if not cached.exists():
            return {"installation_uuid": uuid, "state": "artifact_missing"}
        pid = plugin_id(cached.read_bytes())
        author, name = pid.split("/")
        settings = await self.peer.call("get_plugin_settings", {"plugin_author": author, "plugin_name": name}, context)
        config = settings["plugin_config"]
        record(event="apply", id=pid, revision=context["runtime_revision"], config=config)
        await self.probe_host(config, context)
        log("INFO", f"launching plugin {pid}")
        if config.get("fake") == "fail":
            log("ERROR", f"preparing the dependencies of {pid} failed: fake dependency failure")
            return {"installation_uuid": uuid, "state": "failed", "error_code": "dependency_prepare_failed",
                    "message": "fake dependency failure"}  # fmt: skip
        self.stop_worker(uuid)
        line = f"[01-01 00:00:00.000] main.py (7) - [WARNING] : worker up, revision {context['runtime_revision']}"
        self.workers[uuid] = subprocess.Popen([sys.executable, "-c", WORKER, line], cwd=ARTIFACTS / digest / "code",
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        log("INFO", "housekeeping that concerns no plugin")
        self.installations[uuid] = {"id": pid, "binding": context, "config": config}
        return {"installation_uuid": uuid, "state": "starting"}

    def stop_worker(self, uuid: str) -> None:
        worker = self.workers.pop(uuid, None)
        if worker is not None:
            worker.kill()
            worker.wait()
            log("ERROR", "Error receiving message: 标准输出流已关闭。")

    async def probe_host(self, config: dict, context: dict) -> None:
        calls = [("get_langbot_version", {}), ("get_llm_models", {}), ("invoke_llm", {"llm_model_uuid": "m1"}),
                 ("no_such_api", {})]  # fmt: skip
        if "file" in config:
            calls.append(("get_config_file", {"file_key": config["file"]}))
        for action, data in calls:
            try:
                record(event="host_api", action=action, ok=True, data=await self.peer.call(action, data, context))
            except ActionFailed as exc:
                record(event="host_api", action=action, ok=False, message=str(exc))

    async def do_remove_plugin_installation(self, data: dict, context: dict) -> dict:
        if (self.installations.get(context["installation_uuid"]) or {}).get("config", {}).get("fake") == "slow":
            await asyncio.sleep(2.0)
        self.installations.pop(context["installation_uuid"], None)
        self.stop_worker(context["installation_uuid"])
        return {"installation_uuid": context["installation_uuid"], "state": "removed"}

    async def do_reconcile_plugin_installations(self, data: dict, context: dict) -> dict:
        removed = list(self.installations)
        self.installations.clear()
        for uuid in list(self.workers):
            self.stop_worker(uuid)
        return {"applied": [], "removed": removed, "missing_artifacts": [], "failed_installations": []}

    def current(self, context: dict) -> dict | None:
        inst = self.installations.get(context.get("installation_uuid"))
        return inst if inst and inst["binding"] == context else None

    async def do_list_plugins(self, data: dict, context: dict) -> dict:
        inst = self.current(context)
        if inst is None:
            return {"plugins": []}
        if inst["config"].get("fake") == "slow":
            await asyncio.sleep(1.0)
        author, name = inst["id"].split("/")
        meta = {"author": author, "name": name, "version": "0.1.0"}
        return {"plugins": [{"manifest": {"manifest": {"metadata": meta}}, "status": "initialized"}]}

    async def do_list_tools(self, data: dict, context: dict) -> dict:
        inst = self.current(context)
        tools = [{"owner": inst["id"], "manifest": {"metadata": {"name": n, "description": {"en_US": n}}, "spec": {}}}
                 for n in ("fake_tool", "die")] if inst else []  # fmt: skip
        return {"tools": tools}

    async def do_list_commands(self, data: dict, context: dict) -> dict:
        inst = self.current(context)
        manifest = {"metadata": {"name": "fake", "description": {"en_US": "fake command"}}}
        return {"commands": [{"owner": inst["id"], "manifest": manifest}] if inst else []}

    async def do_call_tool(self, data: dict, context: dict) -> dict:
        if data["tool_name"] == "die":
            record(event="dying")
            os._exit(3)
        return {"tool_response": {"args": data["tool_parameters"], "config": self.current(context)["config"]}}

    async def stream_execute_command(self, seq: int, data: dict) -> None:
        text = data["command_context"]["command_text"]
        frames = [{"seq_id": seq, "code": 0, "message": "success", "data": {"text": f"got {text}"}, "chunk_status": "continue"}]
        if "boom" in text or "raise" in text:
            message = "RuntimeError: boom" if "boom" in text else "ActionCallError: ActionCallError: KeyError: 'x'"
            frames.append({"seq_id": seq, "code": 1, "message": message, "data": {}, "chunk_status": "continue"})
        else:
            frames.append({"seq_id": seq, "code": 0, "message": "success", "data": {}, "chunk_status": "end"})
        for frame in frames:
            await self.peer.transport.send(json.dumps(frame))


class StreamingPeer(Peer):
    """Peer whose execute_command answers with stream frames instead of one reply."""

    def __init__(self, transport, fake: FakeRuntime):
        super().__init__(transport, fake.handle)
        self.fake = fake

    def _dispatch(self, line: str) -> None:
        message = json.loads(line)
        if message.get("action") == "execute_command":
            asyncio.get_running_loop().create_task(self.fake.stream_execute_command(message["seq_id"], message["data"]))
            return
        super()._dispatch(line)


async def main() -> None:
    record(event="start", argv=sys.argv[1:], cwd=os.getcwd(), pid=os.getpid())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=4 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    fake = FakeRuntime()
    fake.peer = StreamingPeer(StdioTransport(reader, writer), fake)
    fake.peer._seq = itertools.count(50000)
    await fake.peer.run()
    record(event="eof")


if __name__ == "__main__":
    asyncio.run(main())
