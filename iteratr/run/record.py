"""Recording an iteration: its events, its commit (and push), and recovery of what a crash left behind.

Every fact goes into the event log before it is acted on, and every iteration, whatever its outcome,
ends in a commit, so ``git log iteratr/S`` is the whole history and a crash at any point loses
nothing: at start-up an iteration that ended but was not committed gets its commit, and one found
unfinished is closed as interrupted and committed.

The commit message is a pure function of the attempt and the states before and after it, which is
what ``git log iteratr/S`` shows a person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iteratr.errors import GitError, IteratrError, StoreError
from iteratr.run import prompt
from iteratr.run.attempt import Attempt
from iteratr.session.state import State, id_number
from iteratr.session.store import Store, make_event

if TYPE_CHECKING:
    from iteratr.gitrepo import GitRepo
    from iteratr.output import Printer
    from iteratr.run.settings import Settings

UNFINISHED = "found unfinished at start-up (the previous run was killed)"


class Recorder:
    """Writes an iteration's start and end to the log and commits it on the session branch."""

    def __init__(self, settings: Settings, store: Store, repo: GitRepo, printer: Printer) -> None:
        self.s = settings
        self.store = store
        self.repo = repo
        self.out = printer

    # -- events ---------------------------------------------------------------------------------

    def started(self, n: int, kind: str, delivered: list[str]) -> State:
        """``iteration.started``, and ``user.delivered`` for the messages its prompt carries."""
        events = [make_event("iteration.started", {"n": n, "kind": kind}, n)]
        if delivered:
            events.append(make_event("user.delivered", {"ids": delivered, "iteration": n}, n))
        return self.store.append(*events)

    def ended(self, attempt: Attempt) -> State:
        """The iteration's one ``iteration.ended`` event: call it once its outcome is final."""
        return self.store.append(make_event("iteration.ended", attempt.end_data(), attempt.n))

    # -- commits --------------------------------------------------------------------------------

    def commit(self, before: State, after: State, attempt: Attempt) -> None:
        """Commit the iteration on the session branch, then push if asked. A failed push is a warning."""
        message = commit_message(self.s.session, before, after, attempt)
        files = [self.store.events_path, self.store.tasks_path, self.s.data_dir / ".gitignore"]
        try:
            self.back_on_branch()
            sha = self.repo.commit_all(message, everything=self.s.auto_commit, force_paths=files)
        except GitError as exc:
            raise StoreError(
                f"could not commit iteration #{attempt.n}: {exc}",
                hint="the events are safe in the log and will be committed by the next run",
            ) from None
        self.out.line(f"    commit {sha}: {message.splitlines()[0]}", "dim")
        if self.s.push:
            try:
                self.repo.push(self.s.push, self.s.branch)
            except GitError as exc:
                self.out.warn(f"push to {self.s.push} failed, carrying on: {exc}")

    def back_on_branch(self) -> None:
        """The agent has a shell: if it switched branches or detached HEAD, the iteration's commit must
        still go on the session branch, never on the user's ``main``. Its work comes along."""
        current = self.repo.current_branch()
        if current == self.s.branch:
            return
        self.out.warn(
            f"the agent left the checkout on {current or 'a detached HEAD'}; switching back to {self.s.branch}"
        )
        self.repo.switch(self.s.branch)

    def commit_end_of_run(self) -> None:
        """Commit what was recorded after the last iteration's commit (session_end's ``hook.ran``): a run
        never leaves the session log dirty, which would block ``git switch``. Never raises: the run is over."""
        try:
            files = [p for p in (self.store.events_path, self.store.tasks_path) if p.exists()]
            rel = [str(p.relative_to(self.repo.root)) for p in files]
            if not rel or not self.repo.run("status", "--porcelain", "--", *rel).strip():
                return
            message = f"iteratr({self.s.session}): end of run\n\nIteratr-Session: {self.s.session}\n"
            sha = self.repo.commit_all(message, everything=False, force_paths=files)
            self.out.line(f"    commit {sha}: {message.splitlines()[0]}", "dim")
            if self.s.push:
                self.repo.push(self.s.push, self.s.branch)
        except (IteratrError, OSError) as exc:
            self.out.warn(f"after session_end: {exc}")

    # -- recovery at start-up -------------------------------------------------------------------

    def recover(self) -> None:
        """Close what an earlier run left behind: first an uncommitted end, then an unfinished iteration."""
        self.recover_uncommitted()
        self.recover_unfinished()

    def recover_uncommitted(self) -> None:
        """An iteration that ended but whose run stopped before its commit (kill -9, a git failure)
        gets its own commit now, so no number is missing from ``git log``."""
        state = self.store.load()
        ended = [n for n, it in state.iterations.items() if it.outcome is not None]
        if not ended:
            return
        it = state.iterations[max(ended)]
        committed = self.repo.last_committed_iteration(self.s.session)
        if committed is not None and committed >= it.n:
            return
        attempt = Attempt(
            n=it.n, kind=it.kind, outcome=it.outcome or "interrupted", error=it.error, duration=it.duration or 0.0
        )
        self.out.line(f"#{it.n} ended but was not committed by an earlier run: committing it now", "warn")
        self.commit(state, state, attempt)

    def recover_unfinished(self) -> None:
        """An iteration left open by a crash or kill -9 is closed as interrupted and committed first."""
        state = self.store.load()
        open_it = state.unfinished_iteration()
        if open_it is None:
            return
        # It ran for some time, but nobody saw it end: say "?" rather than 0s.
        attempt = Attempt(n=open_it.n, kind=open_it.kind, outcome="interrupted", error=UNFINISHED, duration=None)
        self.out.line(f"#{open_it.n} was left unfinished by an earlier run: recording it as interrupted", "warn")
        after = self.ended(attempt)
        self.commit(state, after, attempt)


def commit_message(session: str, before: State, after: State, attempt: Attempt) -> str:
    it = after.iterations.get(attempt.n)
    summary = (it.summary or "").strip().splitlines()[0] if it and it.summary else ""
    changes = []
    for task in sorted(after.tasks.values(), key=lambda t: id_number(t.id)):
        old = before.tasks.get(task.id)
        if old is None:
            changes.append(f"- {task.id} added ({task.status}): {task.content}")
        elif old.status != task.status:
            changes.append(f"- {task.id} {old.status} -> {task.status}: {task.content}")
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
    trailers = [f"Iteratr-Session: {session}", f"Iteratr-Iteration: {attempt.n}"]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"
