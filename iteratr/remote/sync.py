"""A build with a remote: probe, lease, fetch, resume or refuse, before any agent starts; then each commit pushed.

``Link.start`` runs under the session's local run lock, before the agent starts:

1. ``ls-remote`` the session's branch and lease (a remote that does not exist or cannot be reached: exit 1);
2. fetch them; take the lease (a live one held elsewhere: exit 4, naming the holder), or, fetch-only
   (``--remote``), only check it: a fetch-only run writes nothing to the remote;
3. compare the local ``iteratr/S`` with the remote's: missing or behind, it is brought up to the remote's (the
   session resumes, never re-planned); ahead, the local commits are pushed now; diverged, the build stops with
   exit 1 and the commands that show both histories, having changed neither. Commits on the remote that are
   only messages (``iteratr say``, ``messages``) are not a divergence: they are merged, keeping the tree.

``Link.push`` runs after each commit: one atomic push moves the branch to the new commit and renews the lease,
each only if the remote still holds what this run last saw. Rejected, it looks why: messages pushed meanwhile
are merged and the push tried again; the lease taken over is ``LeaseLost`` (exit 4); another machine's commits
are ``PushRejected`` (exit 1). A remote that cannot be reached is tried ``NETWORK_TRIES`` times, then the run
stops as if the lease were lost. In every case the commits stay on the local branch: nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from iteratr import config, config_values, gitrepo
from iteratr.errors import GitError, UsageError
from iteratr.remote import messages, refs
from iteratr.remote.lease import Lease, LeaseLost, read

NETWORK_TRIES = 3
NETWORK_DELAY = 2.0  # seconds before the second try; doubles
REJECTIONS = 8  # pushes refused in a row (messages keep arriving, a hook refuses) before the run stops


class PushRejected(GitError):
    """The remote's branch holds commits this run does not have: another machine ran the session (exit 1)."""


class Link:
    """One build's tie to its remote."""

    def __init__(
        self,
        cwd: Path,
        remote: str,
        session: str,
        *,
        push: bool,
        ttl: float,
        common_dir: Path,
        data_dir: str = ".iteratr",
        retry_delay: float = NETWORK_DELAY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cwd = cwd
        self.remote = remote
        self.session = session
        self.pushing = push
        self.data_dir = data_dir
        self.lease = Lease(cwd, remote, session, ttl=ttl, common_dir=common_dir, work_tree=cwd)
        self.pushed: str | None = None  # the branch's tip on the remote, as this run last saw or pushed it
        self.notes: list[str] = []  # what start did that the user should hear about
        self.retry_delay = retry_delay
        self.sleep = sleep

    @property
    def branch(self) -> str:
        return f"iteratr/{self.session}"

    @property
    def remote_branch(self) -> str:
        """How the remote's branch is named here (its remote-tracking ref's short name)."""
        return f"{refs.label(self.remote)}/iteratr/{self.session}"

    # -- before the agent starts ------------------------------------------------------------------

    def start(self) -> list[str]:
        """Probe, fetch, lease, resume; return what to tell the user. Raises RemoteError, LeaseLost, GitError."""
        said: list[str] = []
        tips = refs.probe(self.cwd, self.remote, self.session)
        refs.fetch(self.cwd, self.remote, self.session, tips)
        if self.pushing:
            warning = self.lease.take(tips.lease)
            if warning:
                said.append(warning)
            self.lease.keep_alive(max(self.lease.ttl / 3, 0.5))  # renewed during a long turn too, not only per push
        else:
            holder = read(self.cwd, tips.lease)
            if holder is not None and not self.lease.earlier_run_here(holder) and holder.live():
                raise self.lease.held_error(holder)
        self.pushed = tips.branch
        said += self._resume(tips.branch)
        return said + self.notes

    def _resume(self, theirs: str | None) -> list[str]:
        ref = refs.branch_ref(self.session)
        ours = refs.rev(self.cwd, ref)
        if theirs is None or ours == theirs:
            return []
        if ours is None:
            gitrepo.run_git(self.cwd, "update-ref", ref, theirs, "")
            return [f"resuming from {self.remote_branch} ({theirs[:9]}): no local branch {self.branch} here"]
        if refs.is_ancestor(self.cwd, ours, theirs):
            self._fast_forward(ours, theirs)
            n = len(refs.only_in(self.cwd, theirs, ours))
            return [f"resuming from {self.remote_branch}: {self.branch} brought up to date ({n} newer commit(s))"]
        if refs.is_ancestor(self.cwd, theirs, ours):
            if self.pushing:  # commits an earlier run made here and could not push: pushed now
                self.push(ours)
                return [f"pushed the commits of {self.branch} that {self.remote_branch} did not have"]
            return []
        only_theirs = refs.only_in(self.cwd, theirs, ours)
        if messages.only_messages(self.cwd, self.session, only_theirs):
            merged = self._merge(ours, theirs)
            return [
                f"merged {len(only_theirs)} message(s) sent to {self.remote_branch} into {self.branch} ({merged[:9]})"
            ]
        base = gitrepo.run_git(self.cwd, "merge-base", ours, theirs, check=False).out.strip()[:9] or "?"
        n_ours = len(refs.only_in(self.cwd, ours, theirs))
        raise refs.RemoteError(
            f"{self.branch} has diverged from {self.remote_branch} ({n_ours} commit(s) here, {len(only_theirs)} "
            f"there, since {base}); nothing was changed, no agent started",
            hint=f"see both: git log --oneline {base}..{self.branch} ; git log --oneline {base}..{self.remote_branch}"
            f" ; to carry on from the remote's and keep this one: git branch -m {self.branch} "
            f"{self.branch}.diverged, then build again",
        )

    def _fast_forward(self, ours: str, theirs: str) -> None:
        where = gitrepo.worktrees(self.cwd).get(self.branch)
        if where is None:
            gitrepo.run_git(self.cwd, "update-ref", refs.branch_ref(self.session), theirs, ours)
            return
        kept = self._put_aside(where) if self._run_left_changes(where) else None
        done = gitrepo.run_git(where, "merge", "--ff-only", "--quiet", theirs, check=False)
        if kept:
            self.notes.append(
                f"changes left in {where} by an earlier run here (killed mid-iteration?) are kept under {kept} "
                f"(`git stash apply {kept}` brings them back): the remote carried the session on"
            )
        if done.returncode != 0:
            detail = done.err.strip().splitlines()[:1]
            raise refs.RemoteError(
                f"{self.remote_branch} is ahead of {self.branch}, but {where} cannot be brought up to date: "
                f"{detail[0] if detail else 'git merge --ff-only failed'}; nothing was changed",
                hint=f"look at `git -C {where} status`: commit or put aside the changes, then run again",
            )

    def _run_left_changes(self, where: Path) -> bool:
        """Whether a run was cut short here: every iteration writes the session's own files before the agent
        starts, so uncommitted changes there are a run's. Without them, what is uncommitted is the user's own
        (notes, a scratch file): it stays where it is, and git's fast-forward refuses only if it would overwrite."""
        session_dir = Path(self.data_dir)
        if session_dir.is_absolute():
            try:
                session_dir = session_dir.relative_to(self.cwd)
            except ValueError:
                return False
        status = gitrepo.run_git(where, "status", "--porcelain", "--", str(session_dir / self.session), check=False)
        return bool(status.out.strip())

    def _put_aside(self, where: Path) -> str | None:
        """Uncommitted changes and untracked files in the session's work tree (what a run killed mid-iteration left),
        moved onto a ref of their own so the work tree can follow the remote: kept, never lost. The ref's name.

        ``git stash push --include-untracked`` (ignored files, the session's runtime files, stay), then the stash
        entry moves from the stash list, which expires, to ``refs/iteratr/S/left-behind/<time>``, which does not."""
        before = refs.rev(where, "refs/stash")
        message = f"iteratr({self.session}): left behind here by an earlier run"
        done = gitrepo.run_git(where, "stash", "push", "--quiet", "--include-untracked", "-m", message, check=False)
        made = refs.rev(where, "refs/stash")
        if done.returncode != 0 or made is None or made == before:
            return None
        ref = f"refs/iteratr/{self.session}/left-behind/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        gitrepo.run_git(where, "update-ref", ref, made)
        gitrepo.run_git(where, "stash", "drop", "--quiet", check=False)
        return ref

    def _merge(self, ours: str, theirs: str) -> str:
        """A merge commit of the messages pushed to the remote, keeping our tree; the local branch moves to it."""
        tree = gitrepo.run_git(self.cwd, "rev-parse", f"{ours}^{{tree}}").out.strip()
        text = f"iteratr({self.session}): messages from {self.remote_branch}\n"
        merged = refs.commit_object(self.cwd, text, tree=tree, parents=(ours, theirs))
        gitrepo.run_git(self.cwd, "update-ref", refs.branch_ref(self.session), merged, ours)
        return merged

    # -- after each commit --------------------------------------------------------------------------

    def push(self, tip: str) -> str:
        """Push ``tip`` and renew the lease in one atomic push; return the tip pushed (a merge of messages sent
        meanwhile, on top of ``tip``, if any). Raises LeaseLost (exit 4) or PushRejected (exit 1)."""
        with self.lease.lock:  # never at the same time as a background renewal
            return self._push(tip)

    def _push(self, tip: str) -> str:
        failures: list[str] = []
        for _ in range(REJECTIONS):
            try:
                new_lease = self.lease.make()
                updates = [refs.Update(refs.branch_ref(self.session), tip, self.pushed)]
                updates.append(refs.Update(self.lease.ref, new_lease, self.lease.sha))
                if self.pushed is not None and not refs.is_ancestor(self.cwd, self.pushed, tip):
                    # Not on top of what the remote has (`--reset` started the session afresh): the remote's
                    # history is kept there under an archive branch, as --reset keeps it here.
                    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                    updates.append(refs.Update(f"{refs.branch_ref(self.session)}.archived-{stamp}", self.pushed, None))
                if refs.push(self.cwd, self.remote, updates):
                    self.pushed, self.lease.sha = tip, new_lease
                    return tip
                tip = self._after_rejection(tip)
            except refs.RemoteError as exc:
                failures.append(exc.message)
                if len(failures) >= NETWORK_TRIES:
                    raise LeaseLost(
                        f"lost contact with {self.remote} ({len(failures)} tries; last: {exc.message}): the lease "
                        f"cannot be renewed, so the run stops as if it were lost; committed here on {self.branch}, "
                        "not pushed"
                    ) from None
                self.sleep(self.retry_delay * 2 ** (len(failures) - 1))
        raise PushRejected(
            f"push to {self.remote} kept being rejected ({REJECTIONS} times); committed here on {self.branch}"
        )

    def _after_rejection(self, tip: str) -> str:
        """Why the push was refused; the tip to push next, or LeaseLost / PushRejected."""
        tips = refs.probe(self.cwd, self.remote, self.session)
        refs.fetch(self.cwd, self.remote, self.session, tips)
        if not self.lease.adopt(tips.lease):  # ours still, if an earlier push of this run went through unanswered
            holder = read(self.cwd, tips.lease)
            who = holder.describe() if holder is not None else "nobody (it was deleted)"
            raise LeaseLost(
                f"the lease on {self.session} at {self.remote} was taken over; it is held by {who}. This run stops: "
                f"its last iteration is committed here on {self.branch}, not pushed"
            )
        theirs = tips.branch
        if theirs is None or refs.is_ancestor(self.cwd, theirs, tip):
            self.pushed = theirs  # e.g. an earlier push went through unanswered, or the branch was deleted there
            return tip
        only_theirs = refs.only_in(self.cwd, theirs, tip)
        if messages.only_messages(self.cwd, self.session, only_theirs):
            self.pushed = theirs
            return self._merge(tip, theirs)
        raise PushRejected(
            f"push to {self.remote} rejected: {self.remote_branch} has {len(only_theirs)} commit(s) this run does "
            f"not have (another machine pushed); this run's commits are kept here on {self.branch}",
            hint=f"see both: git log --oneline {self.branch}...{self.remote_branch}",
        )

    def release(self) -> None:
        if self.pushing:
            self.lease.release()


def link_for(cfg: config.Config, fetch_only: str | None, root: Path, common_dir: Path, name: str) -> Link | None:
    """A build's remote: ``push`` (flag or config: fetch, lease, push) or ``--remote`` (``fetch_only``); else None."""
    if fetch_only is not None:
        try:
            fetch_only = config_values.remote(fetch_only)
        except config_values.InvalidValue as exc:
            raise UsageError(f"--remote: {fetch_only!r} {exc}") from None
    remote = cfg.push or fetch_only
    if not remote:
        return None
    if cfg.push and fetch_only and fetch_only != cfg.push:
        raise UsageError(f"--remote {fetch_only} and push {cfg.push} ({cfg.source('push')}) name different remotes")
    return Link(
        root, remote, name, push=bool(cfg.push), ttl=cfg.lease_ttl, common_dir=common_dir, data_dir=cfg.data_dir
    )


def unused_remote_copy(root: Path, name: str) -> list[str]:
    """A build without a remote, of a session this clone knows only from a remote-tracking branch: say so, as it
    starts a session of its own (the remote's is resumed with --remote or --push)."""
    remotes = refs.remote_sessions(root).get(name)
    if not remotes or refs.rev(root, refs.branch_ref(name)) is not None:
        return []
    there = refs.preferred(remotes)
    return [
        f"note: {there}/iteratr/{name} exists, but this build has no remote, so it starts session {name} afresh "
        f"here; to carry that one on: --push {there} (or --remote {there})"
    ]
