"""Static information: exit codes, file locations."""

from __future__ import annotations

from typing import Mapping

from lbctl.errors import EXIT_CODE_MEANINGS
from lbctl.models import Result
from lbctl.settings import config_path as _config_path


def exit_codes() -> Result:
    rows = [{"code": int(code), "meaning": meaning} for code, meaning in EXIT_CODE_MEANINGS.items()]
    return Result("help exit-codes", "exit_codes", {"exit_codes": rows})


def config_path(environ: Mapping[str, str]) -> Result:
    path = str(_config_path(environ))
    return Result("config-path", "value", {"key": "config_path", "value": path})


def command_help(text: str) -> Result:
    return Result("help", "text", {"help": text}, text=text)
