"""How iteratr runs one git command (part of the one git client, ``iteratr.gitrepo``): through ``iteratr.procs``,
with ``gitreads.GIT_ENV``, a non-zero exit as one ``GitError`` line; or started now and read later (``GitRunning``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from iteratr import gitreads, procs
from iteratr.errors import GitError

NO_GIT = "git is not installed or not on PATH"


def run_git(
    cwd: Path,
    *args: str,
    check: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> procs.Completed:
    """``git ARGS`` in ``cwd``; with ``check``, a non-zero exit is a one-line ``GitError``.

    Run with ``gitreads.GIT_ENV``: messages in English (as GitPython ran git), objects never replaced.
    """
    try:
        argv = ["git", *args]
        done = procs.run(argv, cwd=cwd, env=git_env(env), input=input, timeout=timeout, finish_on_interrupt=True)
    except OSError as exc:
        raise cannot_run(exc) from None
    return checked(done, args) if check else done


def git_env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**(os.environ if env is None else env), **gitreads.GIT_ENV}


def cannot_run(exc: OSError) -> GitError:
    if isinstance(exc, FileNotFoundError):
        return GitError(NO_GIT, hint="install git, then run again")
    return GitError(f"git cannot run: {exc.strerror or exc}", hint="reinstall git")  # e.g. not executable


def checked(done: procs.Completed, args: tuple[str, ...]) -> procs.Completed:
    if done.returncode != 0:
        detail = done.err.strip().replace("\n", " ") or done.out.strip().replace("\n", " ")
        status = "timed out" if done.timed_out else f"exit status {done.returncode}"
        raise GitError(f"git {' '.join(args[:3])} failed: {detail or status}")
    return done


class GitRunning:
    """A git command started (``GitRepo.start``), not waited for yet."""

    def __init__(self, running: procs.Running, args: tuple[str, ...], timeout: float | None = None) -> None:
        self._running = running
        self._args = args
        self._timeout = timeout
        self._done: procs.Completed | None = None

    def completed(self) -> procs.Completed:
        """What it did, once it has ended (asked again, the same answer); stopped at its timeout, if it has one."""
        if self._done is None:
            self._done = self._running.wait(timeout=self._timeout, finish_on_interrupt=True)
        return self._done

    def send(self, data: bytes) -> bool:
        """Its input, for one started with ``hold``; False if it has ended meanwhile (start another)."""
        try:
            self._running.send(data)
        except OSError:
            return False
        return True

    def out(self) -> str:
        """Its stdout less the final newline, once it has ended. Raises GitError as ``GitRepo.run`` does."""
        out = checked(self.completed(), self._args).out
        return out[:-1] if out.endswith("\n") else out
