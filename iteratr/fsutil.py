"""The one atomic file write: a temp file beside the target, fsync, rename over it, fsync the directory.

A reader sees the old content or the new, never a mix, and a crash at any point leaves one of the two.
The temp file is named ``.<name>.<pid>.<random>.iteratr-tmp``: the data dir's ``.gitignore`` ignores
``*.iteratr-tmp``, so a temp file left by a crash (or a full disk) never reaches a commit.

``durable=False`` skips both fsyncs and keeps the rest. It is for files rebuilt from the event log
(``tasks.yaml``, the snapshot): a crash may lose them, and two fsyncs would slow every ``iteratr tool``
write by several milliseconds. Readers still never see half a file.

Kept free of heavy imports: ``iteratr tool`` writes ``tasks.yaml`` through it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".iteratr-tmp"


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")


def atomic_write(
    path: Path, data: bytes | str, *, mode: int = 0o644, durable: bool = True, dir_fd: int | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically (and durably, unless ``durable=False``).

    On any error the old file stays and no temp file is left. ``mode`` is passed to ``open``, so the
    process umask still applies: it never widens what the user allows. With ``dir_fd``, ``path`` is a bare
    name in that open directory (``iteratr.safe_open`` walks to it without following links).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_writer(path, mode=mode, durable=durable, dir_fd=dir_fd) as fd:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644, durable: bool = True, dir_fd: int | None = None) -> Iterator[int]:
    """``atomic_write`` for data written in pieces: yields the temp file's descriptor; on a clean exit
    the file replaces ``path``, on an error it is removed and ``path`` is untouched."""
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            yield fd
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        if dir_fd is None:
            fsync_dir(path.parent)
        else:
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
