"""The one atomic file write: a temp file beside the target, fsync, rename over it, fsync the directory.

A reader sees the old content or the new, never a mix, and a crash at any point leaves one of the two.
The temp file is named ``.<name>.<pid>.<random>.iteratr-tmp``: the data dir's ``.gitignore`` ignores
``*.iteratr-tmp``, so a temp file left by a crash (or a full disk) never reaches a commit.

Kept free of heavy imports: ``iteratr tool`` writes ``tasks.yaml`` through it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TEMP_SUFFIX = ".iteratr-tmp"


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably; on any error the old file stays and no temp is left.

    ``mode`` is passed to ``open``, so the process umask still applies: it never widens what the user allows.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


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
