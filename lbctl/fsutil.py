"""Crash-safe, owner-only file writes; temporary files a killed run left behind; failures of the disk as errors."""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Final, Iterator

from lbctl.errors import EnvironmentUnusableError

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600
_SHA256: Final = re.compile("[0-9a-f]{64}")
# What a disk, a mount or a path in the way does; never a bug of lbctl.
ENVIRONMENT_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                                       errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EMLINK,
                                       errno.ENAMETOOLONG, errno.EIO, errno.EFBIG})


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file; NotRegularFile (an OSError) for a FIFO, a device or a directory, which would
    hang or never end."""
    import hashlib  # its OpenSSL start-up is ~3 ms that commands reading no package need not pay

    digest = hashlib.sha256()
    with open_regular(path) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class NotRegularFile(OSError):
    """A path lbctl reads is a FIFO, a device, a socket or a directory: reading it would hang or never end."""

    def __init__(self, path: Path | str, kind: str):
        super().__init__(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
        self.kind = kind


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "a special file"


def open_regular(path: Path | str) -> BinaryIO:
    """`open(path, "rb")` that refuses anything but a regular file (after following links) before reading a byte:
    opening a FIFO does not wait for a writer, and a device such as /dev/zero is never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, file_kind(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def holding_lock(path: Path, timeout: float, locked: Callable[[], Exception], poll: float = 0.02) -> Iterator[None]:
    """An exclusive flock on the lock file `path` (created owner-only) for the block, waiting at most `timeout`
    seconds for another process to let go; then the error `locked()` makes (exit 6: no lbctl waits for ever on
    another). A lock file that cannot be opened is EnvironmentUnusableError naming it."""
    import fcntl
    import time

    with writing_to(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise locked() from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)


def is_sha256(text: str) -> bool:
    return _SHA256.fullmatch(text) is not None


# --- errors ----------------------------------------------------------------------------------------------


def unusable(exc: OSError, path: Path | str | None = None, action: str = "write") -> EnvironmentUnusableError:
    """The one-line reason why `path` (or the file the error names) cannot be written (or read)."""
    named = exc.filename if isinstance(exc.filename, (str, os.PathLike)) else "?"
    where = Path(path if path is not None else named)
    reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exhausted",
              errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied"}.get(exc.errno or 0)
    obstacle = _obstacle(where)
    hint = "Free some space, or point --home / --cache-dir at a writable directory."
    if isinstance(exc, NotRegularFile) or exc.errno == errno.EISDIR:
        reason = exc.strerror if isinstance(exc, NotRegularFile) else "it is a directory, not a regular file"
        hint = "lbctl keeps a regular file there: move this one away."
    elif obstacle is not None and exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        reason, hint = obstacle, "Fix or remove what is in the way, or point --home / --cache-dir elsewhere."
    return EnvironmentUnusableError(f"Cannot {action} {where}: {reason or exc.strerror or exc}", hint=hint)


def _obstacle(path: Path) -> str | None:
    """A dangling link or a file where a directory should be, on the way to `path`."""
    for part in [*reversed(path.parents), path]:
        if part.is_symlink() and not part.exists():
            return f"{part} is a symbolic link to {os.readlink(part)}, which does not exist"
        if part != path and part.exists() and not part.is_dir():
            return f"{part} is a file, not a directory"
    return None


@contextmanager
def writing_to(path: Path) -> Iterator[None]:
    """OSError from the block becomes EnvironmentUnusableError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise unusable(exc, path) from None


# --- directories and writes ------------------------------------------------------------------------------


def private_dir(path: Path, root: Path | None = None) -> Path:
    """`path` as a directory; the ones it creates from `root` (default: `path` itself) down are owner-only
    whatever the umask, those above `root` get the usual permissions (like `mkdir -p`)."""
    root = path if root is None else root
    assert root == path or root in path.parents, (root, path)
    if os.path.isdir(path):  # the common case: one stat, not a failing mkdir per level
        return path
    chain = [path, *path.parents[: len(path.parts) - len(root.parts)]]
    with writing_to(path):
        root.parent.mkdir(parents=True, exist_ok=True)
        for part in reversed(chain):
            try:
                part.mkdir(mode=PRIVATE_DIR)
            except FileExistsError:
                if not part.is_dir():
                    raise
                continue
            os.chmod(part, PRIVATE_DIR)
    return path


@contextmanager
def atomic_writer(path: Path, mode: int = PRIVATE_FILE, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A stream whose content replaces `path` only when the block ends without an error, so that a crash
    leaves either the old or the new file, never a mix. `durable=False` skips the fsyncs (a cache)."""
    private_dir(path.parent)  # a new directory for state (home/files, the user config's) is owner-only too
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with writing(path.parent), writing_to(path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "wb") as stream:
                yield stream
                stream.flush()
                if durable:
                    os.fsync(stream.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if durable:
        fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_FILE, durable: bool = True) -> None:
    with atomic_writer(path, mode, durable=durable) as stream:
        stream.write(data)


def copy_atomic(src: Path, dest: Path, sha256: str, *, mode: int = 0o644, durable: bool = True) -> None:
    """Copy a file in blocks, checking it still has `sha256`, so the copy is the file that was verified."""
    import hashlib

    digest = hashlib.sha256()
    with open_regular(src) as source, atomic_writer(dest, mode, durable=durable) as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
        if digest.hexdigest() != sha256:
            from lbctl.errors import PackageMismatchError

            raise PackageMismatchError(f"{src} changed while lbctl was using it")


def link_atomic(src: Path, dest: Path, sha256: str) -> bool:
    """Make `dest` a hard link to `src` (renamed into place) when `src` still has `sha256`; False when the file
    system cannot link the two (another device, no hard links): copy then. Only for files lbctl itself wrote and
    never changes in place (the download cache): a user's own file could be rewritten under the link."""
    if sha256_file(src) != sha256:
        from lbctl.errors import PackageMismatchError

        raise PackageMismatchError(f"{src} changed while lbctl was using it")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with writing(dest.parent), writing_to(dest):
        try:
            os.link(src, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP):
                return False
            raise
        try:
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return True


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path (OSError if it cannot be opened)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- temporary files of killed runs ----------------------------------------------------------------------
#
# A writer holds a shared flock on the directory while its temporary file exists; a sweep takes the exclusive
# lock without waiting, so it only ever runs when no live process (of any PID namespace) is writing there,
# and then every temporary file in it was left by a run that died.


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith((".tmp", ".part"))


@contextmanager
def writing(directory: Path) -> Iterator[None]:
    """Mark `directory` as having a live writer for the duration of the block."""
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield  # the write itself reports why the directory cannot be used
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> int:
    """Delete the temporary files in `directory` when no live process is writing there; returns how many."""
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return 0
    removed = 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for entry in os.scandir(directory):
            if is_temporary(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    except OSError:
        pass  # busy, read-only or gone: the next run tries again
    finally:
        os.close(fd)
    return removed


# --- reading files ---------------------------------------------------------------------------------------
#
# One reader for every file lbctl reads whole, the user's (a config file, a plugins file) and its own (state.json,
# the user config and credentials, a target's notes, cache entries): a regular file only, never read past its limit.
# They differ only in what a refusal is: bad input (exit 2, 5) for the user's files, an environment lbctl cannot
# use (exit 6) for its own.


class _TooLarge(Exception):
    pass


def _read_bounded(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file `path` and what fstat said of it (FileNotFoundError, NotRegularFile or another
    OSError; _TooLarge)."""
    with open_regular(path) as stream:
        info = os.fstat(stream.fileno())
        if info.st_size > limit:
            raise _TooLarge
        data = stream.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise _TooLarge
    return data, info


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


def read_regular_file(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a file the user names, a regular file of at most `limit` bytes. A FIFO, a device or a
    directory is refused before anything is read, and a file is never read past `limit`."""
    from lbctl.errors import NotFoundError, UsageError

    try:
        return _read_bounded(path, limit)[0]
    except FileNotFoundError:
        raise NotFoundError(f"No such {what}: {path}") from None
    except NotRegularFile:
        raise UsageError(f"{path} is not a regular file", hint=f"Give the path of a {what}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    except _TooLarge:
        raise UsageError(f"{path} is larger than the limit of {limit} bytes") from None


def read_text_file(path: Path, limit: int, what: str = "file") -> str:
    """`read_regular_file` decoded as UTF-8 (exit 2 when it is not)."""
    from lbctl.errors import UsageError

    try:
        return read_regular_file(path, limit, what).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


OWN_FILE_LIMIT: Final = 1 << 20  # a config file, credentials, a target's notes, a description, a cache entry


def read_own_file(path: Path, limit: int = OWN_FILE_LIMIT) -> bytes:
    """The bytes of a file lbctl keeps, in place of `path.read_bytes()`: FileNotFoundError when it does not exist
    (nor does a link in its place), else the file, a regular one of at most `limit` bytes. A FIFO, a device, a
    dangling link, a file larger than `limit` or one that cannot be read is EnvironmentUnusableError (exit 6)."""
    return read_own_file_stat(path, limit)[0]


def read_own_file_stat(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """`read_own_file`, and what fstat said of the file that was read."""
    try:
        return _read_bounded(path, limit)
    except NotRegularFile as exc:
        if os.path.realpath(path) == os.devnull:  # LBCTL_CONFIG=/dev/null: no settings, as GIT_CONFIG=/dev/null
            return b"", os.stat(os.devnull)
        raise unusable(exc, path, "read") from None
    except FileNotFoundError as exc:
        if _obstacle(path) is None:
            raise
        raise unusable(exc, path, "read") from None
    except OSError as exc:
        raise unusable(exc, path, "read") from None
    except _TooLarge:
        raise EnvironmentUnusableError(f"Cannot read {path}: it is larger than the limit of {_size(limit)}",
                                       hint="It is not a file lbctl wrote: move it away.") from None
