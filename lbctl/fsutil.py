"""Crash-safe file writes."""

from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_writer(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A stream whose content replaces `path` only when the block ends without an error, so that a crash
    leaves either the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    with atomic_writer(path, mode) as stream:
        stream.write(data)


def copy_atomic(src: Path, dest: Path, sha256: str, *, mode: int = 0o644) -> None:
    """Copy a file in blocks, checking it still has `sha256`, so the copy is the file that was verified."""
    digest = hashlib.sha256()
    with atomic_writer(dest, mode) as target, open(src, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
        if digest.hexdigest() != sha256:
            from lbctl.errors import PackageMismatchError

            raise PackageMismatchError(f"{src} changed while lbctl was using it")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
