"""Recording an iteration: its events, its commit (and push), and recovery of what a crash left behind.

Every fact goes into the event log before it is acted on, and every iteration, whatever its outcome,
ends in a commit, so ``git log iteratr/S`` is the whole history and a crash at any point loses
nothing: at start-up an iteration that ended but was not committed gets its commit, and one found
unfinished is closed as interrupted and committed.

The commit message is a pure function of the attempt and the states before and after it, which is
what ``git log iteratr/S`` shows a person.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from iteratr import gitlocks, reaper
from iteratr.errors import EXIT_FAILED, EXIT_LOCKED, GitError, IteratrError, StoreError
from iteratr.run import prompt, untracked
from iteratr.run.attempt import Attempt
from iteratr.run.history import History
from iteratr.run.progress import TurnEnd
from iteratr.secrets import Masker
from iteratr.session import journal, segments
from iteratr.session.events import make_event
from iteratr.session.state import WINDOW, Event, State
from iteratr.session.store import Store
from iteratr.session.tasks import changes as task_changes

if TYPE_CHECKING:
    from pathlib import Path

    from iteratr.gitrepo import GitRepo, GitRunning
    from iteratr.output import Printer
    from iteratr.remote.sync import Link
    from iteratr.run.settings import Settings

UNFINISHED = "found unfinished at start-up (the previous run was killed)"


class Recorder:
    """Writes an iteration's start and end to the log and commits it on the session branch."""

    def __init__(
        self, settings: Settings, store: Store, repo: GitRepo, printer: Printer, *, link: Link | None = None
    ) -> None:
        self.s = settings
        self.link = link  # the session's remote (iteratr.remote.sync): each commit pushed, the lease renewed
        self.halt: tuple[int, str] | None = None  # (exit status, why) once a push stopped the run
        self.store = store
        self.repo = repo
        self.out = printer
        self.history = History(settings.session, settings.branch, store, repo, printer)
        self.mask = Masker()  # secret-looking environment values never reach an event or a commit
        # The user's untracked files when the run started: never committed unless the agent changes them.
        self.baseline: dict[str, untracked.Fingerprint] = {}
        self._said_user_files = False
        self._git_dirs: list[Path] | None = None
        self.orphans = reaper.TurnReaper(printer.warn)  # a subreaper from here on: escaped processes come back

    # -- events ---------------------------------------------------------------------------------

    def started(self, n: int, kind: str, delivered: list[str]) -> State:
        """``iteration.started`` (and ``user.delivered``, when given: call ``delivered`` once the prompt is sent)."""
        events = [make_event("iteration.started", {"n": n, "kind": kind}, n)]
        if delivered:
            events.append(make_event("user.delivered", {"ids": delivered, "iteration": n}, n))
        return self.store.append(*events)

    def delivered(self, n: int, ids: list[str]) -> None:
        """The messages the prompt carries count as delivered only now, as the prompt goes to the agent: an
        iteration killed or interrupted before that leaves them pending for the next prompt."""
        if ids:
            self.store.append(make_event("user.delivered", {"ids": ids, "iteration": n}, n))

    def ended(self, attempt: Attempt, judge: Callable[[State], None] | None = None) -> State:
        """The iteration's one ``iteration.ended`` event: call it once its outcome is final. ``judge`` settles the
        outcome and the progress verdict from the log as the append finds it, under its lock (the turn's own
        writes included): the loop needs no read of its own for them."""

        def decide(now: State) -> list[Event]:
            if judge is not None:
                judge(now)
            data = self.mask.deep(attempt.end_data())
            assert isinstance(data, dict)
            return [make_event("iteration.ended", data, attempt.n)]

        return self.store.transact(decide)[0]

    def check_turn(self, attempt: Attempt, tree: GitRunning | None = None) -> list[str]:
        """At the turn's end, before anything else is recorded: the log must extend iteratr's last commit. ``tree``:
        the work tree's status as the turn left it (``gitreads.start_status``)."""
        return self.history.check_log(attempt.n, tree=tree)

    # -- commits --------------------------------------------------------------------------------

    def commit(self, before: State, after: State, attempt: Attempt, since_turn: TurnEnd | None = None) -> None:
        """Commit the iteration on the session branch, then push if asked. A failed push is a warning.
        ``since_turn``: what the checks at the turn's end found, when nothing (no hook) ran since to change it."""
        paths = since_turn.paths if since_turn is not None else None
        try:
            self.settle_locks()
            found = self.history.restore_branch(attempt.n, checked=since_turn is not None)
            if found.problems:
                self.history.record_branch(attempt.n, found)
                paths = None  # the repair changed the index and may have brought files back
            left_out = self._leave_out(paths) if self.s.auto_commit else untracked.Exclusions()
            message = self.mask(commit_message(self.s.session, before, after, attempt, too_big=left_out.too_big))
            sha = self._stage_and_commit(message, left_out)
        except GitError as exc:
            raise StoreError(
                f"could not commit iteration #{attempt.n}: {exc}",
                hint="the events are safe in the log and will be committed by the next run",
            ) from None
        self.out.line(f"    commit {sha[:7]}: {message.splitlines()[0]}", "dim")
        self._push()

    def _push(self) -> None:
        """Push the commit (and renew the lease) before anything else happens. A rejected push or a lost lease
        is never ignored: the commit stays here and ``halt`` says why the run must stop (the loop stops)."""
        if self.link is None:
            if self.s.push:  # no remote link (the loop driven on its own): a plain push, a failure a warning
                try:
                    self.repo.push(self.s.push, self.s.branch)
                except GitError as exc:
                    self.out.warn(f"push to {self.s.push} failed, carrying on: {self.mask(str(exc))}")
            return
        if self.halt is not None or not self.link.pushing:
            return
        from iteratr.remote.lease import LeaseLost

        tip = self.repo.rev("HEAD")
        if tip is None:
            return
        try:
            pushed = self.link.push(tip)
        except LeaseLost as exc:
            self.halt = (EXIT_LOCKED, self.mask(str(exc)))
            self.out.line(f"    not pushed: {self.halt[1]}", "fail")
            return
        except GitError as exc:  # PushRejected, or the remote refused otherwise
            self.halt = (EXIT_FAILED, self.mask(str(exc)))
            self.out.line(f"    not pushed: {self.halt[1]}", "fail")
            return
        if pushed != tip:  # messages sent meanwhile were merged in: iteratr's record moves to the merge
            self.repo.update_ref(self.history.last_ref, pushed)
            self.take_messages(since=tip)
        self.out.line(f"    pushed {pushed[:7]} to {self.link.remote_branch}, lease renewed", "dim")

    def take_messages(self, since: str | None = None) -> None:
        """Messages sent through the remote (``iteratr say``) that the log has not taken: ``user.message`` events
        now, each once. ``since``: only those the last fetch brought (else every one on the branch)."""
        if self.link is None:
            return
        from iteratr.remote import messages
        from iteratr.run.inbox_pump import shown_message

        found = messages.found(self.repo.root, self.s.session, "HEAD", base=since)
        for event in messages.take(self.store, found):
            first, *rest = shown_message(event["data"]["text"])
            self.out.line(f">>> message from the user ({event['data']['id']}, through the remote): {first}", "user")
            for line in rest:
                self.out.line(f"    {line}", "user")

    def _stage_and_commit(self, message: str, left_out: untracked.Exclusions, *, everything: bool | None = None) -> str:
        """Stage the work (less what is left out) and the session's log and view, together under the log's lock, so
        the commit's ``tasks.yaml`` is the view of its ``events.jsonl``; commit; move iteratr's record."""
        try:  # now and then the live state, so a fresh clone's first read need not replay the whole log
            self.store.write_checkpoint()
        except (IteratrError, OSError) as exc:  # a cache of sorts: the commit goes on without a new one
            self.out.warn(f"the session checkpoint was not written: {self.mask(str(exc))}")
        with self.store.locked():
            # The log's new lines become a closed segment, never rewritten: git hashes and stores them once, and
            # the committed events.jsonl stays small (iteratr.session.segments).
            closed = self.store.close_segment(segments.CLOSE_AT)
            files = [self.store.events_path, self.store.tasks_path, self.store.checkpoint_path]
            files.append(self.s.data_dir / ".gitignore")
            rel = [str(p.relative_to(self.repo.root)) for p in files if p.exists()]
            rel += self._new_segments(closed)
            if self.s.auto_commit if everything is None else everything:
                self.repo.add_all(forced=rel)
                self.repo.paths_op("reset", "--quiet", paths=left_out.paths)
            elif rel:
                self.repo.run("add", "--force", "--", *rel)
            if self.store.journal_path is not None:  # what the journal vouches for is staged now
                journal.seal(self.store.journal_path)
        sha = self.repo.commit_staged(message, also_ref=self.history.last_ref)
        self.history.unstaged_segments = []
        self.history.committed(sha)
        return sha

    def _new_segments(self, closed: Path | None) -> list[str]:
        """The closed segments git does not track yet: the one just closed, and any a run killed between its close
        and its commit left (the commit's log would lack their lines). One ``ls-files`` of the segments' directory,
        not a ``git add`` of it (which would look at every segment)."""
        top = (self.store.dir / segments.SEGMENTS_DIR).relative_to(self.repo.root).as_posix()
        found = [closed.relative_to(self.repo.root).as_posix()] if closed is not None else []
        if self.history.checked:  # the turn's check listed them (under the run lock, only iteratr closes one)
            found += [p.relative_to(self.repo.root).as_posix() for p in self.history.unstaged_segments if p.exists()]
        elif os.path.isdir(self.store.dir / segments.SEGMENTS_DIR):
            listed = self.repo.run("ls-files", "-z", "--others", "--", f"{top}/")
            found += [
                p
                for p in listed.split("\0")
                if p and segments.is_segment_rel(p[len(top) - len(segments.SEGMENTS_DIR) :])
            ]
        return list(dict.fromkeys(found))

    def _leave_out(self, paths: list[str] | None = None) -> untracked.Exclusions:
        """The user's untouched untracked files and files over ``max_file_size``: never in a commit."""
        if not self.baseline and not self.s.max_file_size:
            return untracked.Exclusions()
        session = {
            str(p.relative_to(self.repo.root))
            for p in (self.store.events_path, self.store.tasks_path, self.store.checkpoint_path)
        }
        top = (self.store.dir / segments.SEGMENTS_DIR).relative_to(self.repo.root).as_posix() + "/"
        changed = self.repo.changed_paths() if paths is None else paths
        candidates = [p for p in changed if p not in session and not p.startswith(top)]
        found = untracked.exclusions(self.repo.root, candidates, self.baseline, self.s.max_file_size)
        if found.user_files and not self._said_user_files:
            self._said_user_files = True
            self.out.line(
                f"    {len(found.user_files)} untracked file(s) of yours stay out of the session's commits "
                f"(e.g. {found.user_files[0]})",
                "dim",
            )
        for rel, size in found.too_big:
            self.out.warn(
                f"{rel} ({untracked.size_words(size)}) is over max_file_size "
                f"({untracked.size_words(self.s.max_file_size)}): not committed, left in the work tree"
            )
        return found

    def settle_locks(self) -> None:
        """Before the agent starts and before each commit: wait for a git lock another git holds, remove one a
        killed git left behind (and say so), rather than fail at the commit or block every later run."""
        if self._git_dirs is None:
            self._git_dirs = self.repo.git_dirs()
        try:
            cleared = gitlocks.settle(self._git_dirs, wait=gitlocks.WAIT, stale_after=gitlocks.STALE_AFTER)
        except gitlocks.LockStuck as exc:
            raise GitError(str(exc), hint="wait for that git command to finish, then run again") from None
        for lock in cleared:
            self.out.warn(f"removed a stale git lock {lock.path} ({lock.age:.0f}s old; no process held it)")

    def commit_end_of_run(self) -> None:
        """Commit what was recorded after the last iteration's commit (session_end's ``hook.ran``): a run
        never leaves the session log dirty, which would block ``git switch``. Never raises: the run is over."""
        try:
            files = [
                p for p in (self.store.events_path, self.store.tasks_path, self.store.checkpoint_path) if p.exists()
            ]
            rel = [str(p.relative_to(self.repo.root)) for p in files]
            if not rel or not self.repo.changed(rel):
                return
            self.settle_locks()
            found = self.history.restore_branch(None)  # never onto a branch the agent moved to
            if found.problems:
                self.history.record_branch(self.store.load().current_iteration, found)
            message = f"iteratr({self.s.session}): end of run\n\nIteratr-Session: {self.s.session}\n"
            sha = self._stage_and_commit(message, untracked.Exclusions(), everything=False)
            self.out.line(f"    commit {sha[:7]}: {message.splitlines()[0]}", "dim")
            self._push()
        except (IteratrError, OSError) as exc:
            self.out.warn(f"after session_end: {self.mask(str(exc))}")

    # -- recovery at start-up -------------------------------------------------------------------

    def recover(self) -> None:
        """Close what an earlier run left behind: first an uncommitted end, then an unfinished iteration.

        The log's torn tail is repaired and ``tasks.yaml`` rendered afresh before anything is committed, and
        git locks a killed git left are cleared first."""
        self.settle_locks()
        state = self.store.repair()
        pending = state.unfinished_iteration() is not None or self._uncommitted(state) is not None
        self.history.begin(pending=pending)
        if segments.count(self.store.dir) == 0 and self.store.exists():  # an old session's whole log (or a new
            with self.store.locked():  # one's first lines): a closed segment now, so no check reads it again
                self.store.close_segment(segments.CLOSE_AT)
        self.baseline = untracked.load_or_snapshot(self.repo, self.s.session, keep=pending)
        self.recover_uncommitted()
        self.recover_unfinished()

    def _uncommitted(self, state: State) -> int | None:
        ended = [it.n for it in state.recent_iterations(WINDOW) if it.outcome is not None]  # live, not all
        if not ended and state.current_iteration >= WINDOW:
            ended = [n for n, it in state.iterations.items() if it.outcome is not None]
        if not ended:
            return None
        committed = self.repo.last_committed_iteration(self.s.session)
        return None if committed is not None and committed >= max(ended) else max(ended)

    def recover_uncommitted(self) -> None:
        """An iteration that ended but whose run stopped before its commit (kill -9, a git failure)
        gets its own commit now, so no number is missing from ``git log``."""
        n = self._uncommitted(self.store.load())
        if n is None:
            return
        self.history.check_log(n, trust_loop_lines=True)
        state = self.store.load()
        it = state.iteration(n)
        assert it is not None  # _uncommitted found it ended
        attempt = Attempt(
            n=it.n, kind=it.kind, outcome=it.outcome or "interrupted", error=it.error, duration=it.duration or 0.0
        )
        self.out.line(f"#{it.n} ended but was not committed by an earlier run: committing it now", "warn")
        self.commit(state, state, attempt)

    def recover_unfinished(self) -> None:
        """An iteration left open by a crash or kill -9 is closed as interrupted and committed first."""
        open_it = self.store.load().unfinished_iteration()
        if open_it is None:
            return
        self.history.check_log(open_it.n, trust_loop_lines=True)  # the killed turn may have damaged the log
        state = self.store.load()
        # It ran for some time, but nobody saw it end: say "?" rather than 0s.
        attempt = Attempt(n=open_it.n, kind=open_it.kind, outcome="interrupted", error=UNFINISHED, duration=None)
        self.out.line(f"#{open_it.n} was left unfinished by an earlier run: recording it as interrupted", "warn")
        after = self.ended(attempt)
        self.commit(state, after, attempt)


def commit_message(
    session: str, before: State, after: State, attempt: Attempt, *, too_big: list[tuple[str, int]] | None = None
) -> str:
    it = after.iteration(attempt.n)  # one iteration, never the whole history
    summary = (it.summary or "").strip().splitlines()[0] if it and it.summary else ""
    changes = []
    for old, task in task_changes(before.tasks, after.tasks):  # what changed, not every task of the session
        if old is None:
            changes.append(f"- {task.id} added ({task.status}): {task.content}")
        else:
            changes.append(f"- {task.id} {old} -> {task.status}: {task.content}")
    if attempt.outcome == "ok":
        what = summary or (f"planning: {len(after.tasks)} tasks" if attempt.kind == "planning" else "")
        what = what or (changes[0][2:] if changes else "no summary recorded")
    else:
        label = {"timeout": "timed out", "interrupted": "interrupted"}.get(attempt.outcome, "failed")
        what = f"{label}: {(attempt.error or '').splitlines()[0]}" if attempt.error else label
    subject = f"iteratr({session}): #{attempt.n} {what}"
    if len(subject) > 100:
        subject = subject[:97] + "..."
    body = [f"Outcome: {attempt.outcome}, {prompt.duration_text(attempt.duration)}"]
    if summary and attempt.outcome != "ok":
        body.append(f"Summary: {summary}")
    if attempt.error and len(attempt.error) > 60:
        body.append(f"Error: {attempt.error}")
    if changes:
        body += ["", "Tasks:", *changes]
    if attempt.delivered:
        body.append(f"User messages delivered: {', '.join(attempt.delivered)}")
    if too_big:
        body += ["", "Not committed (over max_file_size):"]
        body += [f"- {path} ({untracked.size_words(size)})" for path, size in too_big]
    trailers = [f"Iteratr-Session: {session}", f"Iteratr-Iteration: {attempt.n}"]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"
