"""Git's lock files: wait for one that is held, remove one that a killed git left behind.

git creates ``index.lock``, ``HEAD.lock`` or ``refs/heads/….lock`` while it changes a file, holding the lock
file open, and renames or deletes it when done. A git killed in between (``kill -9``, a full disk, a crash)
leaves the lock behind, and every later git command that needs it fails. An unattended run must neither
die because another git command holds a lock for half a second, nor stay blocked forever by a dead one.

So, before an agent starts and before each commit:
- a lock that some process holds open is waited for, up to a bound;
- a lock that no process holds, and that is older than a bound, is removed, and the caller says so;
- anything else (a young lock nobody holds: git may be about to open it) is waited for too.
Whether a process holds it is read from ``/proc/*/fd``; where there is no ``/proc``, only age decides.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
WAIT = 10.0  # seconds to wait for a held lock
STALE_AFTER = 5.0  # seconds: an unheld lock older than this was left by a dead git


@dataclass(frozen=True)
class Cleared:
    path: Path
    age: float


class LockStuck(Exception):
    """A git lock stayed held past the wait."""

    def __init__(self, path: Path, holders: list[int]) -> None:
        who = f"held by pid {', '.join(map(str, holders))}" if holders else "not released"
        super().__init__(f"git lock {path} is {who}")
        self.path = path
        self.holders = holders


def lock_files(git_dirs: list[Path]) -> list[Path]:
    """The lock files git may leave in these git dirs (the common dir and a worktree's own)."""
    found: list[Path] = []
    for git_dir in dict.fromkeys(git_dirs):
        for name in ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock", "ORIG_HEAD.lock"):
            if (git_dir / name).exists():
                found.append(git_dir / name)
        refs = git_dir / "refs"
        if refs.is_dir():
            found.extend(sorted(refs.rglob("*.lock")))
    return found


def holders(path: Path) -> list[int]:
    """Processes that have ``path`` open (Linux); [] where that cannot be known."""
    if not PROC.is_dir():
        return []
    target = str(path.resolve(strict=False))
    pids = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(Path(entry.path, "fd"))
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == target:
                        pids.append(int(entry.name))
                        break
                except OSError:
                    continue
    return pids


def settle(git_dirs: list[Path], *, wait: float = WAIT, stale_after: float = STALE_AFTER) -> list[Cleared]:
    """Wait for held locks and remove stale ones; return what was removed. Raises LockStuck past ``wait``."""
    deadline = time.monotonic() + wait
    cleared: list[Cleared] = []
    while True:
        pending: list[tuple[Path, list[int]]] = []
        for path in lock_files(git_dirs):
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            held = holders(path)
            if not held and age >= stale_after:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                cleared.append(Cleared(path, age))
            else:
                pending.append((path, held))
        if not pending:
            return cleared
        if time.monotonic() >= deadline:
            path, held = pending[0]
            raise LockStuck(path, held)
        time.sleep(0.05)
