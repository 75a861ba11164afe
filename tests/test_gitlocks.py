"""Git lock files: a stale one is removed, a held one waited for, a stuck one named."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from iteratr import gitlocks
from tests.conftest import git


def age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_lock_left_by_a_dead_git_is_removed_and_git_works_again(repo: Path) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    age(lock, 60)
    assert subprocess.run(["git", "add", "README.md"], cwd=repo, capture_output=True).returncode != 0
    cleared = gitlocks.settle([repo / ".git"])
    assert [c.path for c in cleared] == [lock] and cleared[0].age >= 59
    git(repo, "add", "README.md")


def test_a_held_lock_is_waited_for(repo: Path) -> None:
    lock = repo / ".git" / "HEAD.lock"
    handle = open(lock, "w")  # noqa: SIM115 - held open across threads, as git holds it
    age(lock, 60)

    def release() -> None:
        time.sleep(0.3)
        handle.close()
        lock.unlink()

    thread = threading.Thread(target=release)
    thread.start()
    assert gitlocks.holders(lock) == [os.getpid()]
    assert gitlocks.settle([repo / ".git"], wait=10) == []  # released by its holder, not removed by us
    thread.join()


def test_a_lock_held_past_the_wait_is_named(repo: Path) -> None:
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    with open(lock, "w"), pytest.raises(gitlocks.LockStuck) as caught:
        gitlocks.settle([repo / ".git"], wait=0.2)
    assert caught.value.path == lock and caught.value.holders == [os.getpid()]
    assert str(os.getpid()) in str(caught.value)
