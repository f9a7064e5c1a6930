"""Output that holds secrets (`freeze --include-secrets`, `config export --include-secrets`)."""

from __future__ import annotations


def private_stdout() -> None:
    """Output holding secrets: when stdout is a regular file (`> plugins.toml`), make it owner-only (0600)
    before anything is written to it, as ssh-keygen does for its keys (spec §4)."""
    import os
    import stat
    import sys

    from lbctl.errors import PreconditionError

    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, ValueError, OSError):  # not a file descriptor (captured output)
        return
    if not stat.S_ISREG(mode) or stat.S_IMODE(mode) & 0o077 == 0:
        return
    try:
        os.fchmod(fd, stat.S_IMODE(mode) & 0o700)
    except OSError as exc:
        raise PreconditionError(f"Cannot make the file on stdout owner-only before writing secrets to it: "
                                f"{exc.strerror or exc}", hint="Redirect to a file you own.") from None
