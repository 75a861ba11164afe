"""The one way iteratr starts and stops child processes: agent, hooks, probes, git and ``$EDITOR``.

Every child but an interactive one (``run_in_foreground``) starts in a new session, so it leads its own
process group, and stopping it stops whatever it started too: SIGTERM to the whole group, then SIGKILL to
what is left after a grace period. A child can therefore never outlive a timeout by leaving a grandchild
behind in the group.

Only the standard library is imported here, and asyncio only by ``stop_async``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio costs ~30 ms to import: status, say and doctor never need it
    import asyncio

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 5.0  # seconds, after SIGKILL, for the group to be gone

# The children iteratr started itself (pid -> start time), so that the turn reaper, which stops the children
# it finds but did not start (orphans re-parented to it), never stops one of iteratr's own: a lease renewal's
# ``git push`` from a background thread runs during the agent's turn. The start time tells a reused pid apart.
_started: dict[int, str] = {}
# Held from before a child exists until it is in ``_started``, and by the reaper while it picks: a child a background
# thread is starting is never seen unremembered (the reaper stopped a lease renewal's push in that moment).
_spawning = threading.Lock()


def proc_stat(pid: int) -> str | None:
    """``/proc/<pid>/stat`` (a plain read: a third of ``Path.read_text``'s cost); None if the process is gone."""
    return _read_small(f"/proc/{pid}/stat")


def _read_small(path: str) -> str | None:
    """A /proc file's text; None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _start_time(pid: int) -> str:
    stat = proc_stat(pid)
    if stat is None:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _remember(pid: int) -> None:
    _started[pid] = _start_time(pid)


def _forget(pid: int) -> None:
    _started.pop(pid, None)


def started_here(pid: int) -> bool:
    """Whether iteratr started ``pid`` itself (through this module), and it is still that process."""
    when = _started.get(pid)
    return when is not None and when == _start_time(pid)


@dataclass(frozen=True)
class Completed:
    """What ``run`` returns. ``returncode`` is None when the command was stopped at its timeout."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: bytes
    stderr: bytes

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def popen(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group). Raises OSError if it cannot start."""
    with _spawning:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        _remember(proc.pid)
    return proc


@contextlib.contextmanager
def no_starts() -> Iterator[None]:
    """No child starts through this module meanwhile: every child of this process it started is remembered
    (``started_here``) for as long as this is held."""
    with _spawning:
        yield


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    input: bytes | None = None,
    grace: float = KILL_GRACE,
    finish_on_interrupt: bool = False,
) -> Completed:
    """Run ``argv`` to completion and capture its output; at ``timeout`` stop its whole group.

    Raises OSError if it cannot start. Never raises for a non-zero exit: the caller reads ``returncode``.
    A Ctrl+C while waiting stops the child at once, or with ``finish_on_interrupt`` lets it finish first
    (git: a commit cut half-way would leave ``index.lock`` behind) and then goes on to the caller.
    """
    proc = popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        return _communicate(
            proc, argv, input=input, timeout=timeout, grace=grace, finish_on_interrupt=finish_on_interrupt
        )
    finally:
        _forget(proc.pid)


class Running:
    """A child ``start`` started: other work goes on while it runs; ``wait`` for its output."""

    def __init__(self, proc: subprocess.Popen[bytes], argv: Sequence[str]) -> None:
        self.proc = proc
        self.argv = argv

    def send(self, data: bytes) -> None:
        """Write ``data`` (a few lines: it must fit the pipe) to a child started with ``hold=True``, and close its
        stdin. Raises OSError (BrokenPipeError) if it has ended meanwhile."""
        if self.proc.stdin is None:
            raise BrokenPipeError("its input was already sent")
        try:
            self.proc.stdin.write(data)
        finally:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.stdin = None  # communicate() must not flush it again

    def wait(self, *, timeout: float | None = None, finish_on_interrupt: bool = False) -> Completed:
        """As ``run`` returns it, once the child has ended (stopped at ``timeout``)."""
        if self.proc.stdin is not None:  # never sent: end of input
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.stdin = None
        try:
            return _communicate(
                self.proc,
                self.argv,
                input=None,
                timeout=timeout,
                grace=KILL_GRACE,
                finish_on_interrupt=finish_on_interrupt,
            )
        finally:
            _forget(self.proc.pid)


def start(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    hold: bool = False,
) -> Running:
    """``run``, with the wait left for later: two git commands that do not depend on each other overlap. ``input``
    (a few lines: it must fit the pipe) is written at once; ``hold`` starts the child now, waiting on its stdin, and
    ``Running.send`` gives its input later (a git command ready before it is needed). Raises OSError if it cannot
    start."""
    piped = input is not None or hold
    proc = popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if piped else subprocess.DEVNULL)
    running = Running(proc, argv)
    if input is not None:
        with contextlib.suppress(BrokenPipeError):  # it ended without reading: its exit status says why
            running.send(input)
    return running


def _communicate(
    proc: subprocess.Popen[bytes],
    argv: Sequence[str],
    *,
    input: bytes | None,
    timeout: float | None,
    grace: float,
    finish_on_interrupt: bool,
) -> Completed:
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=grace)
        out, err = proc.communicate()
        return Completed(tuple(argv), None, out or b"", err or b"")
    except BaseException:  # Ctrl+C while waiting: the child's group must not outlive us
        if finish_on_interrupt:
            try:
                proc.communicate(timeout=timeout)
            except BaseException:
                stop(proc, grace=0)
        else:
            stop(proc, grace=0)
        raise
    return Completed(tuple(argv), proc.returncode, out or b"", err or b"")


def run_in_foreground(argv: Sequence[str], *, cwd: Path | str | None = None) -> int:
    """Run an interactive program (``$EDITOR``) on this terminal and return its exit status.

    The one exception to a new session: a program that reads the terminal must stay in its foreground
    process group, or the terminal stops it (SIGTTIN) at its first read. It inherits stdin, stdout and
    stderr, and Ctrl+C is its own business (an editor handles it), so nothing is stopped here.
    Raises OSError if it cannot start.
    """
    return subprocess.call(list(argv), cwd=cwd)


def stop(proc: subprocess.Popen[bytes], *, grace: float = KILL_GRACE) -> None:
    """SIGTERM the process's whole group, SIGKILL what is left after ``grace`` seconds, and reap it.

    It returns once the group is gone (SIGKILL is delivered asynchronously: a busy machine may take a moment
    to end a member), or after ``KILL_WAIT`` more seconds at the most."""
    pgid = proc.pid  # a new session makes the child the group leader
    signal_group(pgid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    deadline = time.monotonic() + grace
    killed = grace <= 0
    while True:
        proc.poll()  # reap the leader so it does not count as alive
        if not group_alive(pgid):
            break
        if not killed and time.monotonic() >= deadline:
            signal_group(pgid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + KILL_WAIT
        elif killed and time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    proc.wait()


async def start_async(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    limit: int = 2**16,
) -> asyncio.subprocess.Process:
    """``popen`` for asyncio (the agent): a new session, so ``stop_async`` stops its whole group.

    ``limit`` is the stream reader's line limit. Raises OSError if it cannot start.
    """
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        limit=limit,
        start_new_session=True,
    )
    _remember(proc.pid)
    return proc


async def stop_async(proc: asyncio.subprocess.Process, *, grace: float = KILL_GRACE) -> None:
    """``stop`` for a child started with asyncio: the event loop keeps running while the group dies."""
    import asyncio

    pgid = proc.pid
    signal_group(pgid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if group_alive(pgid) or proc.returncode is None:
        signal_group(pgid, signal.SIGKILL)
    await proc.wait()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def live_processes() -> dict[int, tuple[int, int, int]] | None:
    """``pid -> (ppid, process group, session)`` of every live (non-zombie) process; None without ``/proc``.

    The one reader of ``/proc/*/stat``: ``group_alive`` here and ``iteratr.reaper`` use it.
    """
    proc_dir = Path("/proc")
    if not (proc_dir / "self" / "stat").exists():
        return None
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir(proc_dir):
        if not entry.name.isdigit():
            continue
        stat = _read_small(f"{entry.path}/stat")  # at every turn's start and end, for every process: kept cheap
        if stat is None:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state ppid pgrp session ...; comm may contain spaces
        if len(fields) > 3 and fields[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group.

    ``killpg(pgid, 0)`` also counts zombies, and reparented grandchildren stay zombies forever under an init
    that does not reap (common in containers), so on Linux read the members' states from /proc.
    """
    table = live_processes()
    if table is None:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return any(pgrp == pgid for _ppid, pgrp, _sid in table.values())
