"""Did the work tree change in an iteration, outside the session's own files? One of the progress signs.

``mark`` takes a cheap fingerprint before the turn (HEAD and the untracked files, outside the data dir);
``changed_since`` compares the work tree after the turn with it: a tracked file that differs from the HEAD
taken before (so an agent's own commits count too), or a different set of untracked files. Notes, summaries
and task churn live under the data dir and never count: an agent can write those forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from iteratr import gitreads
from iteratr.errors import GitError

if TYPE_CHECKING:
    from pathlib import Path

    from iteratr.gitrepo import GitRepo, GitRunning


@dataclass(frozen=True)
class Mark:
    head: str | None
    untracked: frozenset[str]


@dataclass(frozen=True)
class TurnEnd:
    changed: bool
    # The whole tree's ``git status`` paths (tracked and untracked) as the turn left them, for the commit's check of
    # what to leave out (``Recorder.commit``): one status serves both. None when it could not be taken.
    paths: list[str] | None


def _prefix(repo: GitRepo, data_dir: Path) -> str | None:
    """The data dir's path from the top, with a slash; None when it is outside the work tree (all counts then)."""
    try:
        return data_dir.resolve().relative_to(repo.root).as_posix() + "/"
    except ValueError:
        return None


def _outside(repo: GitRepo, data_dir: Path) -> list[str]:
    prefix = _prefix(repo, data_dir)
    return ["."] if prefix is None else [".", f":(exclude){prefix[:-1]}"]


def mark(repo: GitRepo, data_dir: Path) -> Mark:
    spec = _outside(repo, data_dir)
    try:
        head: str | None = repo.run("rev-parse", "--verify", "--quiet", "HEAD")
    except GitError:
        head = None
    listed = repo.run("ls-files", "-z", "--others", "--exclude-standard", "--", *spec)
    return Mark(head, frozenset(p for p in listed.split("\0") if p))


def start_status(repo: GitRepo) -> GitRunning | None:
    """The ``git status`` ``changed_since`` reads, started now (None if git cannot start: it says so then)."""
    try:
        return gitreads.start_status(repo)
    except GitError:
        return None


def changed_since(repo: GitRepo, data_dir: Path, before: Mark, started: GitRunning | None = None) -> TurnEnd:
    """Whether the work tree (committed or not) differs from ``before`` outside ``data_dir``, from one ``git
    status`` (``started``: taken at the turn's end, while the log was checked): HEAD where it was and no tracked
    change, and the same untracked files, is no change. Only when HEAD moved (the agent committed) is the tree
    compared with the HEAD before, so its own commits count too."""
    prefix = _prefix(repo, data_dir)

    def outside(path: str) -> bool:
        return prefix is None or not path.startswith(prefix)

    try:
        now = gitreads.status(repo, started)
        if before.head is None:
            return TurnEnd(True, now.changed + now.untracked)
        paths = now.changed + now.untracked
        if now.head != before.head:
            tracked = bool(repo.run("diff", "--name-only", before.head, "--", *_outside(repo, data_dir)))
        else:
            tracked = any(outside(p) for p in now.changed)
        return TurnEnd(tracked or frozenset(p for p in now.untracked if outside(p)) != before.untracked, paths)
    except GitError:
        return TurnEnd(True, None)  # cannot tell: never call a stall on a guess
