"""No process the agent starts outlives its turn: a child subreaper, and a sweep of what escaped.

An agent's shell can start a server with ``setsid nohup … &`` or a double fork. Such a process leaves the
agent's process group and, when its parent exits, is re-parented to init, where killing the agent's group
never reaches it. On Linux, iteratr marks itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``):
orphans below it are re-parented to iteratr instead of init, so iteratr can find them (its own children
that it never started) and stop them when a turn ends.

Elsewhere (no ``prctl``) the sweep still stops the agent's descendants it can see through ``/proc``, and
``subreaper()`` says it is not in effect.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable

from iteratr import procs

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def become_subreaper(on: bool = True) -> bool:
    """Make this process the reaper of its orphaned descendants (or stop being it); False where the OS cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        flag = ctypes.c_int(0)
        return bool(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value)
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """pid -> ppid of every live (non-zombie) process."""
    return {pid: ppid for pid, (ppid, _pgrp, _sid) in (procs.live_processes() or {}).items()}


def descendants(root: int, table: dict[int, int] | None = None) -> list[int]:
    """Every live process below ``root``, parents before children."""
    table = _parents() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def orphans(keep: Iterable[int]) -> list[int]:
    """Processes below this one that it did not start (re-parented to it as subreaper), and theirs."""
    me = os.getpid()
    kept = set(keep)
    escaped: list[int] = []
    with procs.no_starts():  # a child another thread is starting right now is remembered before it is judged
        table = _parents()
        for pid, ppid in table.items():
            if ppid == me and pid not in kept and not procs.started_here(pid):
                escaped.append(pid)
                escaped.extend(descendants(pid, table))
    return escaped


def stop_processes(pids: list[int], *, grace: float = 2.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` what is left; reap our own children among them. Returns how many."""
    if not pids:
        return 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.02)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0)  # let the kernel deliver before reaping
    for _ in range(100):
        _reap(pids)
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.01)
    return len(pids)


def _reap(pids: list[int]) -> None:
    """Collect exit statuses of those that are our children: only these pids, never ``waitpid(-1)``, which
    would steal the agent's status from asyncio's child watcher."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    state = procs.proc_stat(pid)
    return state is not None and state[state.rfind(")") + 2 :][:1] not in ("Z", "X", "")


def escaped_below(root: int) -> list[int]:
    """Descendants of ``root`` that left its session (``setsid``), and theirs: still below the agent when the
    turn ends (their parent shell has not exited yet), but out of reach of a kill of the agent's group."""
    table = procs.live_processes() or {}
    if root not in table:
        return []
    home = table[root][2]
    parents = {pid: ppid for pid, (ppid, _pgrp, _sid) in table.items()}
    found: list[int] = []
    for pid in descendants(root, parents):
        if pid not in found and table.get(pid, (0, 0, home))[2] != home:
            found.append(pid)
            found.extend(p for p in descendants(pid, parents) if p not in found)
    return found


def children() -> set[int]:
    """This process's live children."""
    me = os.getpid()
    return {pid for pid, ppid in _parents().items() if ppid == me}


class TurnReaper:
    """Stops, when a turn ends, what the agent started during it that escaped its process group.

    Only processes that became this process's children during the turn (re-parented orphans) are stopped;
    children that existed before it, and the agent itself, are kept.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.active = become_subreaper()
        self._before: set[int] = set()
        self._at_start = children() if self.active else set()

    def close(self) -> None:
        """The run is over (the agent is closed): stop what escaped since the last turn's end (a process whose
        parent shell exited only when the agent did), then stop being a subreaper, so that a process running
        the loop in-process (a test session, a long-lived host) does not collect everyone's orphans from now on."""
        if self.active:
            self._stop(orphans(self._at_start))
            become_subreaper(False)
            self.active = False

    def turn_starts(self) -> None:
        if self.active:
            self._before = children()

    def turn_ended(self, agent: object) -> int:
        if not self.active:
            return 0
        pid = getattr(agent, "pid", None)
        keep = self._before | ({pid} if isinstance(pid, int) else set())
        escaped = orphans(keep)
        if isinstance(pid, int):  # escaped with setsid, but its parent shell still runs below the agent
            escaped += [p for p in escaped_below(pid) if p not in escaped]
        return self._stop(escaped)

    def _stop(self, escaped: list[int]) -> int:
        stopped = stop_processes(escaped)
        if stopped:
            self.warn(
                f"stopped {stopped} process(es) the agent left running past its turn "
                "(escaped its process group with setsid, nohup or a double fork)"
            )
        return stopped
