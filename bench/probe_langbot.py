"""Observe a real LangBot 4.11.2 (tests/langbot_harness.py) and record what the farm (bench/farm.py) imitates.

    .venv/bin/python bench/probe_langbot.py [--out probe.json]

Starts the real LangBot with the tests' fake marketplace, then records, with timings: the discovery routes, a
plugin record as GET /plugins lists it, local and marketplace installs (one, then several at once: how LangBot
serializes them), a task as an API key sees it, the task list, config reads and writes (two writes at once),
what the plugin routes answer while a plugin restarts after a config write, upgrade and delete tasks, and the
plugin list right after the runtime restarts. Prints a summary; --out keeps every answer as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from fakemarket import FakeMarket  # noqa: E402
from langbot_harness import LangBot  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

CONFIG = [{"name": "greeting", "type": "string", "label": {"en_US": "Greeting"}, "default": "hi", "required": True},
          {"name": "api_key", "type": "string", "label": {"en_US": "Key"}, "default": "", "required": False}]


def upload(server: LangBot, data: bytes) -> dict:
    import urllib.request

    boundary = "probeboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.lbpkg\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/api/v1/plugins/install/local", data=body, method="POST",
                                     headers={"X-API-Key": server.api_key,
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def wait(server: LangBot, task: int) -> tuple[dict, float]:
    start = time.monotonic()
    while True:
        answer = server.api(f"/system/tasks/{task}")
        if answer.get("data", {}).get("status") != "running":
            return answer, time.monotonic() - start
        time.sleep(0.05)


def timeline(server: LangBot, plugin_id: str, seconds: float) -> list[tuple[float, str]]:
    """What GET /plugins says about one plugin, every 50 ms, while it restarts."""
    seen, start, last = [], time.monotonic(), None
    while time.monotonic() - start < seconds:
        plugins = server.api("/plugins").get("data", {}).get("plugins", [])
        found = [p for p in plugins if "/".join(p["manifest"]["manifest"]["metadata"][k] for k in ("author", "name"))
                 == plugin_id]
        state = found[0]["status"] if found else "gone"
        if state != last:
            seen.append((round(time.monotonic() - start, 2), state))
            last = state
        time.sleep(0.05)
    return seen


def probe(root: Path) -> dict:
    record: dict = {}
    with FakeMarket() as market:
        for name in ("m0", "m1", "m2", "m3"):
            market.add(make_lbpkg("probe", name, "1.0.0", config=CONFIG))
            market.add(make_lbpkg("probe", name, "1.1.0", config=CONFIG))
        server = LangBot.start(root / "langbot", market_url=market.url)
        try:
            for route in ("/system/info", "/system/context", "/system/capabilities", "/plugins"):
                record[route] = server.api(route)
            record["no key"] = server.api("/plugins", auth=False)
            task = upload(server, make_lbpkg("probe", "local", "1.0.0", config=CONFIG))["data"]["task_id"]
            record["task running"] = server.api(f"/system/tasks/{task}")
            record["install local"], record["install local seconds"] = wait(server, task)
            body = {"plugin_author": "probe", "plugin_name": "m0", "plugin_version": "1.0.0"}
            task = server.api("/plugins/install/marketplace", method="POST", body=body)["data"]["task_id"]
            record["install marketplace"], record["install marketplace seconds"] = wait(server, task)
            body = {"plugin_author": "probe", "plugin_name": "m1", "plugin_version": "9.9.9"}
            task = server.api("/plugins/install/marketplace", method="POST", body=body)["data"]["task_id"]
            record["install missing version"], _ = wait(server, task)
            record["plugins"] = server.api("/plugins")
            record["plugin"] = server.api("/plugins/probe/m0")
            record["plugin missing"] = server.api("/plugins/probe/nothing")
            record["tasks"] = server.api("/system/tasks?type=user&kind=plugin-operation")
            record["task missing"] = server.api("/system/tasks/99999")

            # Three installs at once: does LangBot run them one after another?
            started = time.monotonic()
            tasks = [server.api("/plugins/install/marketplace", method="POST",
                                body={"plugin_author": "probe", "plugin_name": n, "plugin_version": "1.0.0"}
                                )["data"]["task_id"] for n in ("m1", "m2", "m3")]
            done: dict[int, float] = {}
            while len(done) < len(tasks):
                for t in tasks:
                    if t not in done and server.api(f"/system/tasks/{t}")["data"]["status"] != "running":
                        done[t] = round(time.monotonic() - started, 2)
                time.sleep(0.05)
            record["three installs at once: finished after"] = [done[t] for t in tasks]

            record["config fresh"] = server.api("/plugins/probe/m0/config")
            started = time.monotonic()
            record["config put"] = server.api("/plugins/probe/m0/config", method="PUT",
                                              body={"greeting": "one", "api_key": "s3cret"})
            record["config put seconds"] = round(time.monotonic() - started, 2)
            record["config restart timeline"] = timeline(server, "probe/m0", 3.0)
            record["config after put"] = server.api("/plugins/probe/m0/config")
            answers: list[dict] = []
            writers = [threading.Thread(target=lambda v=v: answers.append(server.api(
                "/plugins/probe/m1/config", method="PUT", body={"greeting": v}))) for v in ("a", "b", "c")]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
            record["three config writes at once"] = [(a.get("status"), a.get("code"), a.get("msg")) for a in answers]
            time.sleep(2)
            record["masked with nothing stored"] = server.api("/plugins/probe/m2/config", method="PUT",
                                                              body={"api_key": "***"})
            task = server.api("/plugins/probe/local/upgrade", method="POST")["data"]["task_id"]
            record["upgrade local"], _ = wait(server, task)
            task = server.api("/plugins/probe/m3/upgrade", method="POST")["data"]["task_id"]
            record["upgrade marketplace"], record["upgrade seconds"] = wait(server, task)
            record["after upgrade"] = server.api("/plugins/probe/m3")["data"]["plugin"]["manifest"]["manifest"][
                "metadata"]["version"]
            task = server.api("/plugins/probe/local?delete_data=false", method="DELETE")["data"]["task_id"]
            record["delete"], record["delete seconds"] = wait(server, task)
            task = server.api("/plugins/probe/local?delete_data=false", method="DELETE")["data"]["task_id"]
            record["delete missing"], _ = wait(server, task)

            count = len(server.plugin_ids())
            server.stop_runtime()
            record["runtime down"] = server.api("/plugins")
            started = time.monotonic()
            server.start_runtime()
            seen, last = [], None
            while time.monotonic() - started < 60:
                status = server.api("/plugins")
                n = len(status.get("data", {}).get("plugins", [])) if status["status"] == 200 else status["status"]
                if n != last:
                    seen.append((round(time.monotonic() - started, 2), n))
                    last = n
                if n == count:
                    break
                time.sleep(0.1)
            record["after a runtime restart: (seconds, plugins or HTTP status)"] = seen
        finally:
            server.stop()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbctl-probe-") as tmp:
        record = probe(Path(tmp))
    if args.out:
        args.out.write_text(json.dumps(record, indent=1, default=str))
    for key, value in record.items():
        text = json.dumps(value, default=str)
        print(f"{key}: {text[:300]}{'…' if len(text) > 300 else ''}")


if __name__ == "__main__":
    main()
