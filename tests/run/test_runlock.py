"""The per-session run lock, with real processes: a second build is refused with status 4 naming the
holder, a lock left by a dead process is taken over with a warning, and `tool` and `say` never wait
for the lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from iteratr.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_LOCKED, LockedError
from iteratr.run import runlock
from tests.conftest import FAST_ENV, Background, fake_agent, git, read_events, run_cli, wait_for


def lock_file(repo: Path, session: str = "SPEC") -> Path:
    return repo / ".git" / "iteratr" / "locks" / f"{session}.lock"


def held_by(bg: Background, repo: Path) -> dict[str, Any] | None:
    """The holder record once ``bg`` holds the lock (and has started its first iteration)."""
    holder = runlock.read_holder(lock_file(repo))
    events = repo / ".iteratr" / "SPEC" / "events.jsonl"
    started = events.exists() and b"iteration.started" in events.read_bytes()
    if holder and holder.get("pid") == bg.proc.pid and started:
        return holder
    assert bg.proc.poll() is None, f"the build exited early:\n{bg.output()}"
    return None


def test_second_build_of_a_session_exits_4_naming_the_holder(spec_repo: Path, background: Any) -> None:
    first = background("build", "--headless", "--agent", fake_agent("hang"), cwd=spec_repo)
    holder = wait_for(lambda: held_by(first, spec_repo), "the first build to hold the lock")
    assert holder["host"] == socket.gethostname()
    head = git(spec_repo, "rev-parse", "iteratr/SPEC")

    second = run_cli("build", "--headless", "--agent", fake_agent("follow"), cwd=spec_repo, env=FAST_ENV, expect=4)

    assert f"pid {first.proc.pid} on {socket.gethostname()}" in second.stderr
    assert "locked" in second.stderr
    assert second.stderr.count("\n") == 1  # one line
    assert git(spec_repo, "rev-parse", "iteratr/SPEC") == head  # it committed nothing
    assert first.proc.poll() is None  # and the first run goes on
    assert first.interrupt() == EXIT_INTERRUPTED


def test_second_build_with_reset_is_refused_before_touching_the_running_session(
    spec_repo: Path, background: Any
) -> None:
    """--reset archives the branch: done under a running build it would pull the branch from under it."""
    first = background("build", "--headless", "--worktree", "--agent", fake_agent("hang"), cwd=spec_repo)
    worktree = spec_repo / ".iteratr" / "worktrees" / "SPEC"
    events = worktree / ".iteratr" / "SPEC" / "events.jsonl"
    wait_for(lambda: events.exists() and b"iteration.started" in events.read_bytes(), "the first iteration")
    before = events.read_bytes()

    run_cli("build", "--headless", "--reset", "--agent", fake_agent("follow"), cwd=spec_repo, env=FAST_ENV, expect=4)

    assert git(spec_repo, "branch", "--list", "iteratr/SPEC.archived-*") == ""
    assert git(worktree, "symbolic-ref", "--short", "HEAD") == "iteratr/SPEC"
    assert events.read_bytes().startswith(before)
    assert first.interrupt() == EXIT_INTERRUPTED


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(spec_repo: Path) -> None:
    path = lock_file(spec_repo)
    # A real process takes the lock the way a build does, then dies by SIGKILL: the kernel drops the
    # flock, the holder record stays behind.
    code = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom iteratr.run.runlock import RunLock\n"
        "RunLock(Path(sys.argv[1]), 'SPEC', Path('.')).acquire()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    dead = subprocess.Popen([sys.executable, "-c", code, str(path)], env={**os.environ, **FAST_ENV})
    assert dead.wait(30) == -signal.SIGKILL
    left = runlock.read_holder(path)
    assert left is not None and left["pid"] == dead.pid
    assert not runlock.is_held(path)

    result = run_cli(
        "build", "--headless", "--agent", fake_agent("follow"), "-i", "1", cwd=spec_repo, env=FAST_ENV, expect=3
    )

    assert f"warning: took over the lock left by a run that is gone (pid {left['pid']}" in result.stdout
    assert result.returncode == EXIT_INCOMPLETE
    assert [e["type"] for e in read_events(spec_repo)].count("iteration.ended") == 2  # planning, and -i 1
    assert runlock.read_holder(path) is None  # released cleanly at the end of the run


def test_tool_and_say_work_while_a_build_holds_the_lock(spec_repo: Path, background: Any) -> None:
    build = background("build", "--headless", "--agent", fake_agent("hang"), cwd=spec_repo)
    wait_for(lambda: held_by(build, spec_repo), "the build to hold the lock")

    added = run_cli("tool", "task-add", "--name", "SPEC", "--content", "added while locked", cwd=spec_repo)
    said = run_cli("say", "-n", "SPEC", "hello while locked", cwd=spec_repo)

    assert "TAS-1" in added.stdout
    assert "the running build" in said.stdout
    events = read_events(spec_repo)
    assert [cast("dict[str, Any]", e["data"])["content"] for e in events if e["type"] == "task.added"] == [
        "added while locked"
    ]
    # The running build takes the message from the inbox.
    wait_for(lambda: any(e["type"] == "user.message" for e in read_events(spec_repo)), "the build to take the message")
    assert build.proc.poll() is None
    assert build.interrupt() == EXIT_INTERRUPTED


def test_the_lock_is_shared_by_every_worktree_and_released_on_exit(spec_repo: Path, tmp_path: Path) -> None:
    common = spec_repo / ".git"
    path = runlock.lock_path(common, "SPEC")
    lock = runlock.RunLock(path, "SPEC", spec_repo).acquire()
    try:
        assert runlock.is_held(path)
        with pytest.raises(LockedError) as refused:
            runlock.RunLock(path, "SPEC", tmp_path).acquire()
        assert refused.value.exit_code == EXIT_LOCKED
        assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        lock.release()
    assert not runlock.is_held(path)
    assert runlock.read_holder(path) is None


def test_a_momentary_probe_does_not_refuse_a_build(spec_repo: Path) -> None:
    """`iteratr status` probes the lock by taking it for a moment; a build starting then must still get it."""
    import fcntl

    path = runlock.lock_path(spec_repo / ".git", "SPEC")
    path.parent.mkdir(parents=True)
    probe = open(path, "a+")  # noqa: SIM115
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    releaser = threading.Timer(0.1, lambda: fcntl.flock(probe, fcntl.LOCK_UN))
    releaser.start()
    try:
        lock = runlock.RunLock(path, "SPEC", spec_repo).acquire()
        lock.release()
    finally:
        releaser.join()
        probe.close()
