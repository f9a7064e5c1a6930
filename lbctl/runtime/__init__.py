"""Host the LangBot Plugin Runtime (`serve`) and talk to a running host (`HostClient`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

__all__ = ["HostClient", "RuntimeActionError", "serve", "socket_path"]

SOCKET_NAME: Final = "host.sock"


def socket_path(home: Path) -> Path:
    """Where the host of `home` listens (asking costs no import of the client and its socket module)."""
    return home / "runtime" / SOCKET_NAME


def serve(*args, **kwargs):  # imported lazily: the host pulls in asyncio machinery the CLI rarely needs
    from lbctl.runtime.host import serve as _serve

    return _serve(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("HostClient", "RuntimeActionError"):
        from lbctl.runtime import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
