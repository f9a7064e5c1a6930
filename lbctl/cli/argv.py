"""The command line before typer sees it: global options hoisted to the front, and the command's name."""

from __future__ import annotations

# Global options accepted anywhere on the command line (spec §3): name -> takes a value
GLOBAL_OPTIONS: dict[str, bool] = {
    "--home": True, "--index-url": True, "--cache-dir": True, "--find-links": True, "--output": True,
    "-o": True, "--no-cache": False, "--offline": False, "--json": False, "--yes": False, "-y": False,
    "--no-color": False, "--no-progress": False, "--quiet": False, "--verbose": False, "--debug": False,
    "--target": True, "-t": True, "--wait-ready": True, "--timeout": True,
    "--jobs": True, "-j": True,
}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options that follow the command to the front, so they work in either place."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        takes_value = GLOBAL_OPTIONS.get(name, False) and "=" not in arg
        if takes_value and i + 1 == len(argv):
            rest.append(arg)  # its value is missing: leave it where it is for the parser to report
            break
        if name in GLOBAL_OPTIONS or _is_verbosity(arg):
            front += argv[i : i + 1 + takes_value]
            i += 1 + takes_value
            continue
        rest.append(arg)
        i += 1
    return front + rest


def _is_verbosity(arg: str) -> bool:
    import re

    return re.fullmatch(r"-(q+|v+)", arg) is not None


def command_name(argv: list[str]) -> str:
    """Best-effort command path for the JSON envelope when parsing itself failed."""
    words = [a for a in hoist_global_options(argv) if not a.startswith("-")]
    skip = {argv[i + 1] for i, a in enumerate(argv[:-1]) if GLOBAL_OPTIONS.get(a)}
    words = [w for w in words if w not in skip]
    if words[:1] and words[0] in ("market", "config", "cache", "runtime", "help", "target", "deps", "index") and len(words) > 1:
        return " ".join(words[:2])
    return words[0] if words else ""
