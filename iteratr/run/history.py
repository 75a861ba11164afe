"""The session's history is iteratr's: its own record of its last commit, and the checks against it.

The agent has a shell, and a shell can rewind the branch (``git reset --hard HEAD~2``), rewrite iteratr's
last commit (``git commit --amend``), move to another branch, or empty the session log. So iteratr keeps its
own reference to its last commit, ``refs/iteratr/S/last``: outside ``refs/heads``, where no ordinary
``git commit``, ``reset``, ``checkout`` or ``rebase`` of the agent moves it. It is updated after every
iteratr commit, and every iteration's end is checked against it before the commit:

- **the log** must extend the log of that commit (``iteratr.run.integrity``): on tampering it is put back,
  the valid events the turn appended through iteratr's store (``iteratr.session.journal``) are kept, the rest
  (a line written in by hand, ``echo ... >> events.jsonl``) is set aside beside the log
  (``events.set-aside.log``, git-ignored), and a ``tamper`` event says what was found;
- **the branch** must contain that commit, and the checkout must be on it. If not, the branch is put back so
  that it holds every iteratr commit again; the agent's work-tree changes become this iteration's commit;
  commits the branch no longer holds stay reachable under ``refs/iteratr/S/rewritten/<n>``; a ``tamper``
  event says so. Commits the agent made on top of iteratr's (on the branch, on another branch or on a
  detached HEAD) stay below iteratr's commit, as they always did.

Between runs the user is in charge: a run that starts with nothing left unfinished takes the branch as it
finds it. A run that finds an iteration unfinished (a kill during a turn) checks it like any iteration end.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from iteratr import gitreads, gitrepo
from iteratr.errors import GitError
from iteratr.run import segment_check
from iteratr.run.integrity import check_log
from iteratr.secrets import Masker
from iteratr.session import journal, segments
from iteratr.session.events import make_event
from iteratr.session.store import Store

if TYPE_CHECKING:
    from pathlib import Path

    from iteratr.gitrepo import GitRepo, GitRunning
    from iteratr.output import Printer

READ_IT = "read it"  # ``_read_for_check``: the committed log is not known by its id here, read it from git
SET_ASIDE_FILE = "events.set-aside.log"  # *.log: the data dir's .gitignore keeps it out of git


@dataclass
class BranchRepair:
    """What the branch check found and did, for the warning, the event and the commit."""

    problems: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # refs now keeping rewritten commits


class History:
    def __init__(self, session: str, branch: str, store: Store, repo: GitRepo, printer: Printer) -> None:
        self.session = session
        self.branch = branch
        self.store = store
        self.repo = repo
        self.out = printer
        self.last_ref = f"refs/iteratr/{session}/last"
        self.mask = Masker()  # a problem may quote what the agent wrote (a line, a branch name)
        self.unstaged_segments: list[Path] = []  # closed segments the last commit lacks (staged with the next)
        self.checked = False  # whether check_log listed them since the last commit
        self._intact = False  # as the refs were last read: the checkout on the branch, at iteratr's last commit
        self._committed_id: tuple[str, int] | None = None  # the log that commit holds, as read with the refs
        self._ready: GitRunning | None = None  # a cat-file started before the turn (``prepare``)
        self._own_commit: tuple[str, int] | None = None  # iteratr's last commit in this run, its closed segments

    # -- iteratr's record ---------------------------------------------------------------------------

    def begin(self, *, pending: bool) -> None:
        """At run start: take the branch as it is unless an iteration was left unfinished (``pending``), whose
        end is still to be checked against the record the killed run kept."""
        tip = self.repo.rev(f"refs/heads/{self.branch}")
        if tip is not None and (not pending or self.repo.rev(self.last_ref) is None):
            self.repo.update_ref(self.last_ref, tip)

    def committed(self, sha: str) -> None:
        """After each iteratr commit, which moved the record to it (``GitRepo.commit_staged``'s ``also_ref``)."""
        self._own_commit = (sha, segments.count(self.store.dir))  # every closed segment is in it
        self.checked = False
        self.store.own_lines.clear()
        if self.store.journal_path is not None:  # the staged log is committed: its digests are done with
            journal.committed(self.store.journal_path)

    def last(self) -> str | None:
        return self.repo.rev(self.last_ref)

    # -- the log --------------------------------------------------------------------------------------

    def check_log(self, n: int, *, trust_loop_lines: bool = False, tree: GitRunning | None = None) -> list[str]:
        """Put the log back if the turn did more than append to it; return the problems found ([] if none).

        ``trust_loop_lines``: at recovery, the loop lines after the commit were written by the killed run.
        ``tree``: the whole work tree's ``git status`` (``gitreads.start_status``), taken as the turn ended (read by
        ``progress.changed_since``; reaped here if this raises).
        """
        rel = self.store.events_path.relative_to(self.repo.root).as_posix()
        try:
            last, segs, committed_id = self._read_for_check(rel, tree)
        finally:
            if tree is not None:
                tree.completed()  # the turn's status, started with these reads: waited for here whatever happens
        self.unstaged_segments = list(segs.new)
        self.checked = last is not None
        try:
            current: bytes | None = self.store.events_path.read_bytes() if self.store.exists() else None
        except OSError:
            current = None
        if segs.new:
            current = segs.tail() + (current or b"")
        committed = self._committed(committed_id, current, last, rel)
        if current is None and not committed and not segs.changed and not segs.strays:
            return []
        appended = (current or b"")[len(committed) :] if current and current.startswith(committed) else current or b""
        allowed = frozenset(appended.splitlines(keepends=True)) if trust_loop_lines else frozenset(self.store.own_lines)
        path = self.store.journal_path
        verdict = check_log(
            committed, current, allowed_loop_lines=allowed, journaled=journal.digests(path) if path else None
        )
        if not verdict.tampered and current is not None:  # a cut that kept the committed part (all of it, when
            have = set(current[len(committed) :].splitlines(keepends=True))  # events.jsonl was just closed)
            gone = [line for line in self.store.own_lines if line not in have]
            if gone:
                verdict.problems.append(f"the session log was cut: {len(gone)} line(s) iteratr wrote are gone")
                verdict.repaired = current
        verdict.problems += [f"closed segment {p} was edited or deleted" for p in segs.changed]
        verdict.problems += [f"{p.relative_to(self.repo.root)} is no segment iteratr wrote" for p in segs.strays]
        for stray in segs.strays:
            with contextlib.suppress(OSError):
                verdict.set_aside.extend(stray.read_bytes().splitlines(keepends=True))
        if not verdict.tampered:
            return []
        if segs.changed or segs.strays or segs.new:  # put back; new segments' kept lines go to events.jsonl
            assert last is not None
            segment_check.put_back(self.repo, segs, last)
            self.unstaged_segments = []
            self.store.forget_snapshot()
        repaired = verdict.repaired
        # iteratr's own lines since its commit (this iteration's start, a hook's record) are known exactly: put
        # back any the damage took, right after the committed part, where they stood.
        have = set(repaired.splitlines(keepends=True))
        missing = b"".join(line for line in self.store.own_lines if line not in have)
        if missing:
            cut = len(committed) + (1 if committed and not committed.endswith(b"\n") else 0)
            repaired = repaired[:cut] + missing + repaired[cut:]
        self.store.dir.mkdir(parents=True, exist_ok=True)
        self.store.create()  # after `rm -rf .iteratr/S`: the directory and the data dir's .gitignore again
        aside = ""
        if verdict.set_aside:
            path = self.store.dir / SET_ASIDE_FILE
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "ab") as f:
                f.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in verdict.set_aside))
            aside = str(path.relative_to(self.repo.root))
        self.store.rewrite(repaired)
        data: dict[str, object] = {"what": "log", "problems": [self.mask(p) for p in verdict.problems]}
        if aside:
            data["set_aside"] = aside
        self.store.append(make_event("tamper", data, n))
        said = "; ".join(verdict.problems)
        where = f"; {len(verdict.set_aside)} line(s) set aside in {aside}" if aside else ""
        self.out.warn(f"#{n}: the session log was tampered with ({said}): restored from iteratr's last commit{where}")
        return verdict.problems

    # -- the branch -----------------------------------------------------------------------------------

    def restore_branch(self, n: int | None, *, checked: bool = False) -> BranchRepair:
        """Before a commit: the checkout on the session branch, and the branch holding iteratr's last commit.
        ``checked``: nothing ran since ``check_log`` read the refs (no hook), so what it found still holds.

        The work tree is left as the agent left it, except for files the agent did not touch that the
        repair brings back (those of iteratr's commits a ``reset --hard`` took away).
        """
        found = BranchRepair()
        if not checked:
            self._read_refs()
        if self._intact:
            return found
        last = self.last()
        current = self.repo.current_branch()
        tip = self.repo.rev(f"refs/heads/{self.branch}")
        on_branch = current == self.branch
        if last is None:  # no record (the first commit of a new session's first run): just the checkout
            if not on_branch:
                self._back_on_branch_simply(current)
            return found
        if on_branch and tip is not None and self.repo.is_ancestor(last, tip):
            return found
        head = self.repo.rev("HEAD")
        if tip is None:
            found.problems.append(f"the branch {self.branch} was deleted")
        elif not self.repo.is_ancestor(last, tip):
            how = "rewound" if self.repo.is_ancestor(tip, last) else "rewritten (amend, rebase or reset)"
            found.problems.append(f"{self.branch} was {how}: it no longer held iteratr's commit {last[:9]}")
        if not on_branch:
            found.problems.append(f"the agent left the checkout on {current or 'a detached HEAD'}")
        base = tip if tip is not None and self.repo.is_ancestor(last, tip) else last
        # The agent's own commits on top of iteratr's (elsewhere, or detached) come along, below iteratr's commit.
        parent = head if head is not None and not on_branch and self.repo.is_ancestor(base, head) else base
        for index, sha in enumerate(dict.fromkeys(x for x in (tip, head) if x is not None)):
            if not self.repo.is_ancestor(sha, parent):
                ref = f"refs/iteratr/{self.session}/rewritten/{n if n is not None else 'end'}" + (
                    f"-{index}" if index else ""
                )
                self.repo.update_ref(ref, sha)
                found.kept.append(ref)
        grew_from = (self.repo.merge_base(last, head) if head else None) or parent
        touched = set(self.repo.changed_paths(against=grew_from)) if head else set()
        self.repo.update_ref(f"refs/heads/{self.branch}", parent)
        self.repo.attach_head(self.branch)
        self.repo.run("read-tree", parent)  # the index is the restored branch's; the work tree is untouched
        if head is not None and head != parent:
            self._bring_back(head, parent, touched)
        kept = f"; the rewritten commits are kept under {', '.join(found.kept)}" if found.kept else ""
        if len(found.problems) == 1 and not on_branch:
            came = "; the agent's commits there come along" if parent not in (tip, base) else ""
            self.out.warn(f"{found.problems[0]}; switching back to {self.branch}{came}{kept}")
        else:
            self.out.warn(
                f"{'#' + str(n) if n is not None else 'end of run'}: {'; '.join(found.problems)}. {self.branch} "
                f"again holds every iteratr commit; the agent's changes are kept in this commit{kept}"
            )
        return found

    def prepare(self) -> None:
        """Before the agent's turn: the ``cat-file`` the check at its end reads through, started now, so its start
        costs the loop nothing then (it reads the repository as it is when asked)."""
        self.discard()
        with contextlib.suppress(GitError):
            self._ready = gitreads.ready_objects(self.repo)

    def discard(self) -> None:
        """The prepared ``cat-file``, if unused, ended (its input closed)."""
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.completed()

    def _read_for_check(
        self, rel: str, tree: GitRunning | None
    ) -> tuple[str | None, segment_check.SegmentState, tuple[str, int] | str | None]:
        """iteratr's last commit, the closed segments against it, and the log it committed. In the common case (HEAD
        on the branch, at iteratr's own last commit, no segment closed since) from the ``cat-file`` prepared before
        the turn and the turn's status ``tree``: no git started here. Else from git commands (a status of the
        segments' directory, ignored files included, when HEAD is the record; else a diff and a listing).

        Closed segments (iteratr.run.segment_check): the committed ones must be as committed; new ones (closed after
        the commit: at the staging of one that did not happen, or an old session's first run) are the head of what
        was appended since, unless the first is the committed events.jsonl itself (not read then).

        The committed log comes back as its blob's (id, size), None if the commit has none, or ``READ_IT``."""
        ready, self._ready = self._ready, None
        names = (f"refs/heads/{self.branch}", self.last_ref, f"{self.last_ref}:{rel}")
        try:
            objects: GitRunning | None = gitreads.start_objects(self.repo, *names, ready=ready)
        except GitError:
            objects = None
        last = self._read_refs(objects)
        if not last:
            return None, segment_check.SegmentState(), None
        segs = None
        own = self._own_commit is not None and self._own_commit == (last, segments.count(self.store.dir))
        if self._intact and own and tree is not None:
            with contextlib.suppress(GitError):
                segs = segment_check.from_status(self.repo, self.store.dir, gitreads.status(self.repo, tree))
        if segs is None:
            started = segment_check.start(self.repo, self.store.dir) if self._intact else None
            segs = segment_check.inspect(self.repo, self.store.dir, last, started)
        if segs.new and segment_check.is_committed(self.repo, last, rel, segs.new[0]):
            return last, replace(segs, new=segs.new[1:]), None
        if self._intact:
            return last, segs, self._committed_id
        return last, segs, READ_IT

    def _committed(
        self, found: tuple[str, int] | str | None, current: bytes | None, last: str | None, rel: str
    ) -> bytes:
        """The log iteratr's last commit holds: the head of the log now when it has that blob's id (the common
        case: nothing read from git), else the blob itself."""
        if found is None or last is None:
            return b""
        if not isinstance(found, str) and current is not None:
            blob, size = found
            if len(current) >= size and gitreads.blob_id(current[:size], blob) == blob:
                return current[:size]
        return gitrepo.blob(self.repo.root, last, rel) or b""

    def _read_refs(self, started: GitRunning | None = None) -> str | None:
        """iteratr's last commit (as ``last``), and whether the branch is as iteratr left it (``_intact``): the
        checkout on it, its tip that commit. Without git started but ``started``'s in that common case, which gives
        the id and size of the log that commit holds (``_committed_id``) too."""
        branch = f"refs/heads/{self.branch}"
        self._intact, self._committed_id = False, None
        try:
            reading = started or gitreads.start_objects(self.repo, branch, self.last_ref)
            found = gitreads.objects(reading)
        except GitError:
            found = []
        tip, last, log = (*found, None, None, None)[:3]
        # A branch tip is always a commit: equal to it, iteratr's record needs no check of its own.
        if gitreads.head_ref(self.repo) == branch and tip is not None and last is not None and tip[0] == last[0]:
            self._intact = True
            self._committed_id = log
            return last[0]
        return self.last()

    def _bring_back(self, head: str, parent: str, touched: set[str]) -> None:
        """Files that differ between where the agent left HEAD and the restored branch, and that the agent did
        not change itself: their content is the restored branch's."""
        restore = [p for p in self.repo.diff_names(head, parent) if p not in touched]
        if not restore:
            return
        present = set(self.repo.run("ls-tree", "-r", "-z", "--name-only", parent, "--", *restore).split("\0")) - {""}
        self.repo.paths_op("checkout", parent, paths=[p for p in restore if p in present])
        for rel in restore:
            if rel not in present:
                with contextlib.suppress(OSError):
                    (self.repo.root / rel).unlink()

    def _back_on_branch_simply(self, current: str | None) -> None:
        self.out.warn(f"the agent left the checkout on {current or 'a detached HEAD'}; switching back to {self.branch}")
        try:
            self.repo.switch(self.branch)
        except GitError:
            self.repo.attach_head(self.branch)

    def record_branch(self, n: int, found: BranchRepair) -> None:
        if found.problems:
            data: dict[str, object] = {"what": "branch", "problems": [self.mask(p) for p in found.problems]}
            if found.kept:
                data["rewritten"] = found.kept
            self.store.append(make_event("tamper", data, n))
