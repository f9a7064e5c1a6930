"""Plugin ids as users type them: close matches for typos, and bare names that name one plugin."""

from __future__ import annotations

import difflib
from typing import Iterable


def suggestion(plugin_id: str, known: Iterable[str]) -> str | None:
    """A "did you mean" hint naming the closest known id, or None."""
    known = list(known)
    close = difflib.get_close_matches(plugin_id, known, n=1, cutoff=0.6)
    if not close and "/" not in plugin_id:
        close = [k for k in known if k.split("/", 1)[-1] == plugin_id][:1]
    return f"Did you mean {close[0]}?" if close else None


def expand(plugin_id: str, known: Iterable[str]) -> str:
    """`name` -> `author/name` when exactly one known plugin has that name; anything else is returned as is."""
    if "/" in plugin_id:
        return plugin_id
    matches = [k for k in known if k.split("/", 1)[-1] == plugin_id]
    return matches[0] if len(matches) == 1 else plugin_id
