"""The world of the README's console blocks, served on this machine, so they can be followed verbatim offline.

    python tests/demo.py             # the demo marketplace on http://127.0.0.1:8765
    python tests/demo.py --langbot   # and a real LangBot 4.11.2 on http://127.0.0.1:5300 that installs from it

The marketplace is the test suite's fake one (tests/fakemarket.py) holding the plugins the README shows; the
LangBot is the one the LangBot tests run (tests/langbot_harness.py: the first start installs it into
.langbot-venv, about 3 minutes). It prints the `export` lines to paste into the shell where you follow the
README and serves until Ctrl-C. tests/test_readme.py builds the same marketplace with `populate`.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python -m tests.demo`

from fakemarket import FakeMarket  # noqa: E402
from pkgfactory import make_lbpkg  # noqa: E402

MARKET_PORT = 8765
LANGBOT_PORT = 5300  # LangBot's own default


def populate(market: FakeMarket) -> None:
    """The plugins of the README's marketplace blocks."""
    for version in ("0.1.0", "0.2.0"):
        market.add(make_lbpkg("langbot-team", "WeatherNow", version, label="Weather Now",
                              description="Current weather and forecasts as an LLM tool"), install_count=1200)
    market.add(make_lbpkg("acme", "weather-alerts", "1.0.0", description="Severe weather alerts"), install_count=85)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=MARKET_PORT, help=f"the marketplace's port ({MARKET_PORT})")
    parser.add_argument("--langbot", action="store_true", help="also run LangBot 4.11.2, using that marketplace")
    parser.add_argument("--langbot-port", type=int, default=LANGBOT_PORT, help=f"LangBot's port ({LANGBOT_PORT})")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start it with SIGINT ignored
        signal.signal(signum, _interrupt)
    try:
        market = FakeMarket(port=args.port).start()
    except OSError as exc:
        print(f"error: cannot serve the marketplace on 127.0.0.1:{args.port}: {exc.strerror} (try --port)",
              file=sys.stderr)
        return 1
    populate(market)
    exports = [f"export LBCTL_INDEX_URL={market.url}"]
    print(f"The demo marketplace is at {market.url}: langbot-team/WeatherNow 0.1.0 and 0.2.0, "
          "acme/weather-alerts 1.0.0", flush=True)
    workdir, langbot = None, None
    try:
        if args.langbot:
            from langbot_harness import LangBot, free_port

            port = args.langbot_port or free_port()
            workdir = Path(tempfile.mkdtemp(prefix="lbctl-demo-langbot-"))
            print(f"Starting LangBot 4.11.2 on http://127.0.0.1:{port} (its logs: {workdir})...", flush=True)
            try:
                langbot = LangBot.start(workdir, market_url=market.url, api_port=port)
            except RuntimeError as exc:  # its port taken, say: the logs stay for reading
                print(f"error: {exc}", file=sys.stderr)
                workdir = None
                return 1
            exports.append(f"export LANGBOT_API_KEY={langbot.api_key}")
            print(f"LangBot is up at {langbot.url}, installing plugins from the demo marketplace.", flush=True)
        print("In the shell where you follow the README:", *(f"    {line}" for line in exports),
              "Ctrl-C stops the demo.", sep="\n", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if langbot is not None:
            langbot.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        market.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
