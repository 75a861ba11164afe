"""The closed segments of the session log against iteratr's last commit (``iteratr.run.history``'s log check).

A closed segment (``iteratr.session.segments``) is never rewritten, and every one iteratr's last commit holds must
be in the work tree as that commit has it. One ``git diff`` of that commit against the work tree, limited to the
segments' directory, finds the ones an agent edited or deleted (git compares the index's stat first: the
segments are not read); they are put back from the commit (``git checkout <last> -- <paths>``).

Segments the commit does not hold are new since it: the recorder closes ``events.jsonl`` into one just before it
commits, so a crash (or a failed commit) between the two leaves one behind. Their lines are checked like lines
appended to ``events.jsonl``: the log since the commit is these segments in number order, then ``events.jsonl``,
and it must extend the committed ``events.jsonl``. A file under the segments' directory that is no segment name is
set aside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iteratr import gitreads
from iteratr.errors import GitError
from iteratr.session import segments

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from iteratr.gitrepo import GitRepo, GitRunning


@dataclass
class SegmentState:
    """What the work tree's segments are, next to iteratr's last commit."""

    changed: list[str] = field(default_factory=list)  # committed segments edited or deleted (paths from the root)
    new: list[Path] = field(default_factory=list)  # segments the commit lacks, in number order
    strays: list[Path] = field(default_factory=list)  # files under events/ that are no segment

    def tail(self) -> bytes:
        """The new segments' bytes, in order: the head of what was appended since the commit."""
        return b"".join(p.read_bytes() for p in self.new)


def start(repo: GitRepo, session_dir: Path) -> GitRunning:
    """What ``inspect`` reads when HEAD is iteratr's last commit (the common case), started: one ``git status`` of
    the segments' directory, ignored files included (a user's .gitignore may cover the data dir)."""
    rel = (session_dir / segments.SEGMENTS_DIR).relative_to(repo.root).as_posix()
    return repo.start(*gitreads.STATUS, "--ignored=traditional", "--", f"{rel}/")


def inspect(repo: GitRepo, session_dir: Path, last: str, started: GitRunning | None = None) -> SegmentState:
    """The segments against commit ``last``; ``started``: ``start``'s status, when HEAD is ``last``."""
    found = SegmentState()
    top = session_dir / segments.SEGMENTS_DIR
    rel = top.relative_to(repo.root).as_posix()
    if started is not None:
        added = _classify(gitreads.entries(started.out()), found.changed)
    else:
        added = _from_diff(repo, last, rel, found.changed)
        if os.path.isdir(top):
            added += [p for p in repo.run("ls-files", "-z", "--others", "--", f"{rel}/").split("\0") if p]
    return _sorted(repo, rel, added, found)


def from_status(repo: GitRepo, session_dir: Path, tree: gitreads.TreeStatus) -> SegmentState:
    """As ``inspect``, from the whole work tree's ``git status`` (HEAD being the commit), when the segments' count
    is the commit's. That status lists no file a .gitignore hides (a user's, or one the agent planted beside a
    segment), and needs not: such a file is no segment any reader takes. A reader takes only the names
    ``segments.segment_rel`` gives, in their own directories: under one of the commit's numbers that is a tracked
    path, whose change status shows; under a higher one ``segments.count`` would have grown."""
    found = SegmentState()
    rel = (session_dir / segments.SEGMENTS_DIR).relative_to(repo.root).as_posix()
    return _sorted(repo, rel, _classify(tree.entries, found.changed, f"{rel}/"), found)


def _sorted(repo: GitRepo, rel: str, added: list[str], found: SegmentState) -> SegmentState:
    """``added`` (paths from the top) told apart: segments iteratr's names allow, in number order, and strays."""
    numbered = []
    for path in dict.fromkeys(added):
        inside = path[len(rel) - len(segments.SEGMENTS_DIR) :]  # events/…
        stem = inside.rsplit("/", 1)[-1].removesuffix(".jsonl")
        full = repo.root / path
        if stem.isdigit() and stem.isascii() and segments.segment_rel(int(stem)) == inside and not full.is_symlink():
            numbered.append((int(stem), full))
        else:
            found.strays.append(full)
    found.new = [p for _, p in sorted(numbered)]
    return found


def _from_diff(repo: GitRepo, last: str, rel: str, changed: list[str]) -> list[str]:
    """The segments ``last`` lacks that the index has; those it has that differ or are gone go to ``changed``."""
    out = repo.run("diff", "--no-renames", "--name-status", "-z", last, "--", f"{rel}/")
    fields = [f for f in out.split("\0") if f]
    added: list[str] = []
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        (added if status == "A" else changed).append(path)
    return added


def _classify(entries: Iterable[tuple[str, str, str, str]], changed: list[str], under: str = "") -> list[str]:
    """As ``_from_diff``, from ``git status`` against HEAD (which is the commit), for the paths ``under`` a
    directory: a file the index added, or an untracked or ignored one, is new; a committed one modified, deleted or
    moved (in the index or the work tree) is changed."""
    added: list[str] = []
    for kind, xy, path, original in entries:
        inside = path.startswith(under)
        if kind in ("?", "!") and inside:
            added.append(path)
        elif kind == "2":  # a rename or copy in the index: the new path is new; a renamed one is gone
            if xy[0] == "R" and original.startswith(under):
                changed.append(original)
            if inside:
                added.append(path)
        elif kind in ("1", "u") and inside:
            if xy[0] != "A":
                changed.append(path)
            elif xy[1] != "D":  # added to the index, then deleted: there is nothing
                added.append(path)
    return added


def is_committed(repo: GitRepo, last: str, rel: str, segment: Path) -> bool:
    """Whether ``segment`` is the file ``rel`` (events.jsonl) of commit ``last``: an old session's log closed as
    its first segment. Compared by size, then by blob id (git streams the file: it is never read into memory)."""
    try:
        size = segment.stat().st_size
        if str(size) != repo.run("cat-file", "-s", f"{last}:{rel}"):
            return False
        return repo.run("hash-object", "--", str(segment)) == repo.run("rev-parse", f"{last}:{rel}")
    except (OSError, GitError):
        return False


def put_back(repo: GitRepo, found: SegmentState, last: str) -> None:
    """The committed segments as the commit has them; the new segments and the strays removed (the caller writes
    what is kept of their lines to ``events.jsonl``)."""
    for path in [*found.new, *found.strays]:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():  # git lists a nested repository as one directory
                shutil.rmtree(path)
            else:
                path.unlink()
    repo.paths_op("checkout", last, paths=found.changed)  # last: nothing removed above takes a committed one
