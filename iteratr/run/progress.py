"""Did the work tree change in an iteration, outside the session's own files? One of the progress signs.

``mark`` takes a cheap fingerprint before the turn (HEAD and the untracked files, outside the data dir);
``changed_since`` compares the work tree after the turn with it: a tracked file that differs from the HEAD
taken before (so an agent's own commits count too), or a different set of untracked files. Notes, summaries
and task churn live under the data dir and never count: an agent can write those forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from iteratr.errors import GitError

if TYPE_CHECKING:
    from pathlib import Path

    from iteratr.gitrepo import GitRepo


@dataclass(frozen=True)
class Mark:
    head: str | None
    untracked: str


def _outside(repo: GitRepo, data_dir: Path) -> list[str]:
    try:
        rel = data_dir.resolve().relative_to(repo.root)
    except ValueError:
        return ["."]
    return [".", f":(exclude){rel.as_posix()}"]


def mark(repo: GitRepo, data_dir: Path) -> Mark:
    spec = _outside(repo, data_dir)
    try:
        head: str | None = repo.run("rev-parse", "--verify", "--quiet", "HEAD")
    except GitError:
        head = None
    return Mark(head, repo.run("ls-files", "--others", "--exclude-standard", "--", *spec))


def changed_since(repo: GitRepo, data_dir: Path, before: Mark) -> bool:
    """True when the work tree (committed or not) differs from ``before`` outside ``data_dir``."""
    spec = _outside(repo, data_dir)
    try:
        if before.head is None or repo.run("diff", "--name-only", before.head, "--", *spec):
            return True
        return repo.run("ls-files", "--others", "--exclude-standard", "--", *spec) != before.untracked
    except GitError:
        return True  # cannot tell: never call a stall on a guess
