"""Open files under the data dir without ever following a symlink, so a repository cannot aim iteratr elsewhere.

A repository can commit symlinks: ``.iteratr/S/inbox.md -> ~/.aws/credentials`` would put the credentials
into a prompt and a commit; ``events.jsonl`` or ``.iteratr/.gitignore`` pointing anywhere would be
truncated or overwritten. Checking with ``os.path.islink`` first races, and misses a symlinked directory
in the middle (``.iteratr/S -> /etc``). So every open walks from the data dir one component at a time with
``openat`` semantics (``dir_fd``), each directory opened ``O_DIRECTORY | O_NOFOLLOW`` and the final file
``O_NOFOLLOW``: the kernel refuses any link, whichever component it is, with no window between check and
use. The data dir itself is opened with ``O_NOFOLLOW`` on its last component too (a committed
``.iteratr -> /`` is refused); links above it (``/home -> /usr/home``) are the user's and are followed.

A refused link raises :class:`SymlinkError` (a ``UsageError``: exit 2) naming it. Reads also refuse
anything that is not a regular file (a FIFO would block for ever).

Stdlib only, and no ``typing`` at runtime: ``iteratr tool`` imports this on every call.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from iteratr import fsutil
from iteratr.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkError(UsageError):
    """A path under the data dir is a symbolic link (or not a regular file/directory); nothing went through it."""


def _refuse(shown: str, what: str = "a symbolic link") -> SymlinkError:
    return SymlinkError(f"{shown} is {what}; iteratr never reads or writes through a link in the data dir (remove it)")


def _parts(rel: str | os.PathLike[str]) -> list[str]:
    text = os.fspath(rel)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if os.path.isabs(text) or not parts or ".." in parts:
        raise ValueError(f"not a plain relative path under the data dir: {text!r}")
    return parts


def _open_dir(name: str, shown: str, *, dir_fd: int | None, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=dir_fd)  # the umask narrows it, never widens
        return _open_dir(name, shown, dir_fd=dir_fd, create=False)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, dir_fd):
            raise _refuse(shown) from None
        raise  # a plain file where a directory goes: the OS error, as an open without the check gives


def _is_link(name: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_parent(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str], *, create: bool = False) -> int:
    """A descriptor of the directory holding ``data_dir/rel``, every component checked. The caller closes it.

    ``create`` makes missing directories on the way (``mkdir`` under the same descriptors).
    """
    parts = _parts(rel)
    base = os.fspath(data_dir)
    fd = _open_dir(base, base, dir_fd=None, create=create)
    shown = base
    try:
        for part in parts[:-1]:
            shown = os.path.join(shown, part)
            next_fd = _open_dir(part, shown, dir_fd=fd, create=create)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def refuse_link(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str]) -> None:
    """Refuse (``SymlinkError``) if ``data_dir/rel`` itself is a link: one ``lstat``, for refusing before a step
    that comes first (the store checks ``tasks.yaml`` before it appends the event the view is rendered from).
    The directories on the way are not walked, so only after a sibling was opened through them; the file's
    own open or write still refuses, this only makes the refusal come earlier."""
    shown = os.path.join(os.fspath(data_dir), os.fspath(rel))
    try:
        linked = stat.S_ISLNK(os.lstat(shown).st_mode)
    except OSError:
        return  # missing (or unreadable): the write that follows says so, if it matters
    if linked:
        raise _refuse(shown)


def open_fd(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open(data_dir/rel, flags | O_NOFOLLOW)`` with no link followed on the way; a raw descriptor."""
    name = _parts(rel)[-1]
    shown = os.path.join(os.fspath(data_dir), os.fspath(rel))
    parent = open_parent(data_dir, rel, create=bool(flags & os.O_CREAT))
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and _is_link(name, parent)):
            raise _refuse(shown) from None
        raise
    finally:
        os.close(parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refuse(shown, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_read(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str]) -> BinaryIO:
    return os.fdopen(open_fd(data_dir, rel, os.O_RDONLY), "rb")


def read_bytes(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The file's bytes; with ``limit``, at most ``limit`` bytes (ask for limit + 1 to detect "too big")."""
    with open_read(data_dir, rel) as f:
        return f.read() if limit is None else f.read(limit)


def open_append(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str], mode: int = 0o600) -> BinaryIO:
    """Append, creating the file (and its directories) if missing; ``mode`` is narrowed by the umask."""
    return os.fdopen(open_fd(data_dir, rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode), "ab")


def open_write(data_dir: str | os.PathLike[str], rel: str | os.PathLike[str], mode: int = 0o600) -> BinaryIO:
    """Truncate and write in place (prefer :func:`atomic_write` for whole-file replacements)."""
    return os.fdopen(open_fd(data_dir, rel, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, mode), "wb")


def atomic_write(
    data_dir: str | os.PathLike[str],
    rel: str | os.PathLike[str],
    data: bytes,
    mode: int = 0o600,
    *,
    durable: bool = True,
) -> None:
    """Replace ``data_dir/rel`` atomically. A rename replaces a link itself and never writes through it; the
    directories on the way are checked like every other open, and a link in the file's place is refused, not
    silently replaced: the user should learn that one was planted. The temp name ends in ``.iteratr-tmp``.
    ``durable=False`` skips the fsyncs, for files rebuilt from the log (as ``fsutil.atomic_write`` does)."""
    name = _parts(rel)[-1]
    parent = open_parent(data_dir, rel, create=True)
    try:
        if _is_link(name, parent):
            raise _refuse(os.path.join(os.fspath(data_dir), os.fspath(rel)))
        fsutil.atomic_write(Path(name), data, mode=mode, durable=durable, dir_fd=parent)
    finally:
        os.close(parent)
