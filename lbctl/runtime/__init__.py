"""Host the LangBot Plugin Runtime (`serve`) and talk to a running host (`HostClient`)."""

from lbctl.runtime.client import HostClient, RuntimeActionError

__all__ = ["HostClient", "RuntimeActionError", "serve"]


def serve(*args, **kwargs):  # imported lazily: the host pulls in asyncio machinery the CLI rarely needs
    from lbctl.runtime.host import serve as _serve

    return _serve(*args, **kwargs)
