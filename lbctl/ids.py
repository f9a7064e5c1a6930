"""Plugin ids as users type them: close matches for typos, and bare names that name one plugin."""

from __future__ import annotations

import difflib
from typing import Iterable


def suggestion(plugin_id: str, known: Iterable[str]) -> str | None:
    """A "did you mean" hint naming the closest known ids, or None. A full id is compared with the full ids;
    a bare name (and a full id with no close match) with the names after the slash, so `dcie` finds
    `lbctl-examples/dice` and `acme/dice` finds it too."""
    known = sorted(set(known))
    close = difflib.get_close_matches(plugin_id, known, n=1, cutoff=0.6) if "/" in plugin_id else []
    if not close:
        by_name: dict[str, list[str]] = {}
        for pid in known:
            by_name.setdefault(pid.split("/", 1)[-1], []).append(pid)
        name = plugin_id.split("/", 1)[-1]
        nearest = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
        close = by_name[nearest[0]][:3] if nearest else []
    return f"Did you mean {' or '.join(close)}?" if close else None


def expand(plugin_id: str, known: Iterable[str]) -> str:
    """`name` -> `author/name` when exactly one known plugin has that name; anything else is returned as is."""
    if "/" in plugin_id:
        return plugin_id
    matches = [k for k in known if k.split("/", 1)[-1] == plugin_id]
    return matches[0] if len(matches) == 1 else plugin_id
