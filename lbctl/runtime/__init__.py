"""Host the LangBot Plugin Runtime (`host.serve`) and talk to a running host (`client.HostClient`).

This package module imports none of its submodules: asking where a host listens costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

SOCKET_NAME: Final = "host.sock"


def socket_path(home: Path) -> Path:
    """Where the host of `home` listens (asking costs no import of the client and its socket module)."""
    return home / "runtime" / SOCKET_NAME
