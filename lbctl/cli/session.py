"""Per-invocation glue between typer and the core: global flags -> Settings -> Context; results -> Renderer."""

from __future__ import annotations

import os
import sys
from functools import cached_property
from typing import Any, Mapping

from lbctl import interrupts
from lbctl.context import Context
from lbctl.errors import CancelledError, ConfirmationNeededError, LbctlError
from lbctl.models import Result
from lbctl.render import Renderer, sanitize
from lbctl.settings import Settings, resolve


class Session:
    def __init__(self, environ: Mapping[str, str], argv: list[str]):
        self.environ = environ
        self.argv = argv
        self.flags: dict[str, Any] = {}
        self.exit_code = 0
        self.command = ""

    @cached_property
    def settings(self) -> Settings:
        return resolve(self.flags, self.environ)

    @cached_property
    def renderer(self) -> Renderer:
        json_output = wants_json(self.argv, self.environ, self.flags)
        try:
            settings = self.settings
            json_output, no_color = json_output or settings.json, settings.no_color
        except Exception:  # noqa: BLE001 - a broken setting must still render its own error
            no_color = "NO_COLOR" in self.environ
        return Renderer(json_output=json_output, quiet=self.flags.get("quiet") or 0,
                        verbose=self.flags.get("verbosity") or 0, color=not no_color and sys.stdout.isatty(),
                        err_color=not no_color and sys.stderr.isatty())

    @cached_property
    def context(self) -> Context:
        context = Context(self.settings, confirm=self.confirm, progress=self.progress_factory())
        context.env.tidy()
        context.cache.tidy()
        return context

    def render(self, result: Result) -> None:
        interrupts.check()  # a Ctrl-C that something swallowed still ends the command as interrupted
        interrupts.finish()  # from the first byte of the result on, a signal changes nothing: one document
        self.exit_code = self.renderer.result(result)

    def render_error(self, error: LbctlError, command: str) -> int:
        """The error that ends the command (one document, whatever signal comes while it is printed)."""
        interrupts.finish()
        return self.renderer.error(error, command)

    def confirm(self, message: str) -> bool:
        """True when the user answers yes. No is their decision: CancelledError (exit 1), nothing changed and
        no hint to bypass the question; a question that cannot be asked (no terminal) needs --yes (exit 2)."""
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise ConfirmationNeededError(f"{message} (confirmation needed)",
                                          hint="Pass --yes to confirm when not on a terminal.")
        from rich.prompt import Confirm
        from rich.text import Text

        if not Confirm.ask(Text(sanitize(message)), console=self.renderer.console("err"), default=False):
            raise CancelledError("Cancelled; nothing changed")
        return True

    def ask_secret(self, message: str) -> str:
        """A hidden prompt on a terminal; otherwise one line from stdin. Never from argv."""
        if sys.stdin.isatty() and sys.stderr.isatty():
            from rich.prompt import Prompt
            from rich.text import Text

            return Prompt.ask(Text(sanitize(message)), console=self.renderer.console("err"), password=True)
        return sys.stdin.readline(64 * 1024 + 1).rstrip("\r\n")

    def progress_factory(self):
        """`progress(label)` for the core's waits; rich is imported at the first wait, not at start-up (~30 ms)."""
        if self.settings.no_progress or self.settings.json or not sys.stderr.isatty():
            return None
        import threading

        made: list = []
        lock = threading.Lock()  # downloads start in threads; all share one live display

        def progress(label: str):
            from rich.markup import escape

            with lock:
                if not made:
                    from lbctl.cli.progress import make_progress

                    made.append(make_progress(self.renderer.console("err")))
            return made[0](escape(sanitize(label)))  # a URL may hold "[" or control characters

        return progress


def wants_json(argv: list[str], environ: Mapping[str, str], flags: Mapping[str, Any]) -> bool:
    if flags.get("output") == "json" or flags.get("json"):
        return True
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("--json", "--output=json", "-ojson") or (arg in ("-o", "--output") and argv[i + 1:i + 2] == ["json"]):
            return True
    return environ.get("LBCTL_OUTPUT") == "json"


def debug_enabled(argv: list[str], environ: Mapping[str, str] = os.environ) -> bool:
    return "--debug" in argv or environ.get("LBCTL_DEBUG", "") not in ("", "0")
