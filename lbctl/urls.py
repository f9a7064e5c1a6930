"""The one check of an http(s) URL that comes from outside: --index-url, a target's URL, an install URL, the
marketplace URL a LangBot instance reports. A URL that cannot name a server (a broken IPv6 literal, a port out of
range, a host longer than DNS allows, a control character) is refused here with a one-line reason, before any
client library sees it (httpx raises its own errors for some, and accepts others it then cannot use).

Imports only the standard library: settings run it on every command.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

MAX_URL: Final = 2048
MAX_HOST: Final = 253  # DNS: a name of at most 253 characters, labels of at most 63
_LABEL: Final = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\\]")


class BadURL(ValueError):
    """Why a URL cannot be used (str(exc) is the reason, without the URL)."""


def problem(url: str) -> str | None:
    """None when `url` is a usable http(s) URL, else the reason it is not."""
    if not isinstance(url, str) or not url:
        return "it is empty"
    if len(url) > MAX_URL:
        return f"it is longer than {MAX_URL} characters"
    unsafe = _UNSAFE.search(url)
    if unsafe is not None:
        char = unsafe.group()
        return "it contains a space" if char == " " else (
            "it contains a backslash" if char == "\\" else f"it contains the control character U+{ord(char):04X}")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when it is not a number from 0 to 65535
    except ValueError as exc:
        return _reason(str(exc))
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    host = parts.hostname or ""
    if not host:
        return "it has no host"
    if port == 0:
        return "port 0 is not a port a server listens on"
    if "[" in parts.netloc:
        return _ipv6_problem(host)
    if len(host) > MAX_HOST:
        return f"the host name is longer than {MAX_HOST} characters"
    ascii_host = host
    if not host.isascii():
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return "the host name is not a valid internationalized domain name"
    if not all(_LABEL.match(label) for label in ascii_host.rstrip(".").split(".")):
        return "the host name is not valid (labels of 1 to 63 letters, digits, '-' or '_')"
    return None


def _ipv6_problem(host: str) -> str | None:
    import ipaddress

    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return "the address in [brackets] is not an IPv6 address"
    return None


def _reason(text: str) -> str:
    if "Invalid IPv6 URL" in text:
        return "the IPv6 address in it is not closed with ']'"
    if "IPv4 or IPv6" in text:
        return "the address in [brackets] is not an IPv6 address"
    if "Port" in text or "port" in text:
        return "the port is not a number from 1 to 65535"
    return text


def has_credentials(url: str) -> bool:
    """Whether a URL holds a user name or password (`scheme://user:password@host`)."""
    rest = url.split("://", 1)[-1]
    for end in "/?#":
        rest = rest.split(end, 1)[0]
    return "@" in rest


def check(url: str) -> str:
    """`url` unchanged when it is usable, else BadURL with the reason."""
    reason = problem(url)
    if reason is not None:
        raise BadURL(reason)
    return url


def require(url: str, what: str, error: type | None = None) -> str:
    """`url` unchanged when it is usable, else `error` (UsageError: exit 2) naming `what` and the reason."""
    reason = problem(url)
    if reason is None:
        return url
    if error is None:
        from lbctl.errors import UsageError as error
    raise error(f"Invalid {what} '{shown(url)}': {reason}")


_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")


def shown(url: str, limit: int = 120) -> str:
    """`url` for a message: a password in it masked, its control characters escaped, cut at `limit` characters."""
    url = _USERINFO.sub(r"\1***@", url)
    text = "".join(f"\\u{ord(c):04x}" if _UNSAFE.match(c) and c not in " \\" else c for c in url)
    return text if len(text) <= limit else text[:limit] + "…"
