"""One build per session at a time: a per-session lock in the repository's common git dir.

The lock lives in ``<git-common-dir>/iteratr/locks/S.lock``, which every worktree of the repository
shares and git never commits, so a run in a linked worktree and a run in the main checkout see the
same lock. It is an ``flock`` held for the whole run: the kernel drops it when the process dies,
even by ``kill -9``, so a lock can never stay held by a dead run. The file also records who holds
it (pid, host, start time, work tree) so that a refused run can say so, and a file left behind by
a dead run is noticed and taken over with a warning.

``iteratr tool`` and ``iteratr say`` never take this lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from iteratr.errors import LockedError
from iteratr.session.events import utc_now


def lock_path(common_dir: Path, session: str) -> Path:
    return common_dir / "iteratr" / "locks" / f"{session}.lock"


def _open_lock(path: Path) -> Any:
    """The lock file, created private (0600: it names the user's host, pid and paths), never widening the umask."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "a+")


def read_holder(path: Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock, or None."""
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_held(path: Path) -> bool:
    """True if a live process holds the lock right now."""
    try:
        with _open_lock(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def _try_lock(f: Any, patience: float = 0.5) -> bool:
    """Take the lock without blocking, trying again for ``patience`` seconds.

    ``is_held`` (``iteratr status``, maybe under ``--watch``) takes the lock for a moment to probe it;
    a build starting in that moment must not mistake the probe for a running build.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another run"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')} in {holder.get('work_tree')}"


class RunLock:
    def __init__(self, path: Path, session: str, work_tree: Path) -> None:
        self.path = path
        self.session = session
        self.work_tree = work_tree
        self._file: Any = None
        self.stale: dict[str, Any] | None = None  # what a dead run left behind, if anything

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = _open_lock(self.path)  # held open for the whole run
        if not _try_lock(f):
            f.close()
            raise LockedError(
                f"session {self.session} is locked by a running build ({describe(read_holder(self.path))})",
                hint="wait for it to finish, or stop it; `iteratr status` shows it",
            ) from None
        previous = read_holder(self.path)
        if previous:
            self.stale = previous
        f.seek(0)
        f.truncate()
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utc_now(),
            "work_tree": str(self.work_tree),
        }
        f.write(json.dumps(holder))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
        self._file = None
