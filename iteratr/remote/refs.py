"""The network side of a remote session: ``ls-remote``, ``fetch`` and compare-and-swap ``push``.

Every command goes through ``gitrepo.run_git`` (the one git client). They never ask for a password
(``GIT_TERMINAL_PROMPT=0``: a CI job or cron must fail, not hang) and are bounded by ``NETWORK_TIMEOUT``.
A remote that does not exist or cannot be reached is a ``RemoteError`` (exit 1) in one line.

Refs, for session S and remote R:

- ``refs/heads/iteratr/S`` on the remote: the session's branch; here ``refs/remotes/R/iteratr/S`` tracks it;
- ``refs/iteratr/leases/S`` on the remote: the lease; the copy fetched last is kept here in
  ``refs/iteratr/remote-leases/R/S`` (what ``iteratr status`` shows, without asking the network).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from iteratr import gitrepo, paths
from iteratr.errors import GitError

NETWORK_TIMEOUT = 120.0
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


class RemoteError(GitError):
    """The remote does not exist, cannot be reached, or refused what was asked (exit 1)."""


def branch_ref(session: str) -> str:
    return f"refs/heads/iteratr/{session}"


def lease_ref(session: str) -> str:
    return f"refs/iteratr/leases/{session}"


def label(remote: str) -> str:
    """The remote's name in local ref names: itself for a named remote, a digest for a URL or path (``--push
    /srv/git/project.git``), which cannot be part of a ref name."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", remote) and ".." not in remote and not remote.endswith(".lock"):
        return remote
    return "url-" + hashlib.sha256(remote.encode()).hexdigest()[:12]


def tracking_ref(remote: str, session: str) -> str:
    return f"refs/remotes/{label(remote)}/iteratr/{session}"


def fetched_lease_ref(remote: str, session: str) -> str:
    return f"refs/iteratr/remote-leases/{label(remote)}/{session}"


def _env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


def _first_line(done: object) -> str:
    err = getattr(done, "err", "") or ""
    lines = [line.removeprefix("fatal: ").strip() for line in err.splitlines() if line.strip()]
    return lines[0] if lines else "no answer"


def _refuse_an_unknown_name(cwd: Path, remote: str) -> None:
    """A name with no ``/`` or ``:`` that ``git remote`` does not list is a typo, not a network fault: git would
    have tried it as a path and said it "does not appear to be a git repository", which points the wrong way.
    Asked only after ls-remote failed, so a path that happens to have no ``/`` still works."""
    if "/" in remote or ":" in remote:
        return
    configured = gitrepo.run_git(cwd, "remote", check=False).out.split()
    if remote in configured:
        return
    here = f"remotes here: {', '.join(configured)}" if configured else "no remote is configured here"
    raise RemoteError(f"no remote named {remote!r}", hint=here)


@dataclass(frozen=True)
class Tips:
    """What the remote holds for a session right now: its branch's and its lease's object, None if absent."""

    branch: str | None
    lease: str | None


def probe(cwd: Path, remote: str, session: str) -> Tips:
    """Ask the remote (one round trip) where the session's branch and lease are. RemoteError if unreachable."""
    done = gitrepo.run_git(
        cwd, "ls-remote", remote, branch_ref(session), lease_ref(session), check=False, env=_env(),
        timeout=NETWORK_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        _refuse_an_unknown_name(cwd, remote)
        why = "timed out" if done.timed_out else _first_line(done)
        raise RemoteError(f"remote {remote!r} cannot be reached: {why}", hint="check `git remote -v` and the network")
    found = {}
    for line in done.out.splitlines():
        sha, _, ref = line.partition("\t")
        found[ref.strip()] = sha.strip()
    return Tips(found.get(branch_ref(session)), found.get(lease_ref(session)))


def fetch(cwd: Path, remote: str, session: str, tips: Tips) -> None:
    """Fetch what ``tips`` says exists: the branch into its remote-tracking ref, the lease into its copy here;
    a ref the remote no longer has is deleted here too."""
    specs = []
    if tips.branch:
        specs.append(f"+{branch_ref(session)}:{tracking_ref(remote, session)}")
    else:
        gitrepo.run_git(cwd, "update-ref", "-d", tracking_ref(remote, session), check=False)
    if tips.lease:
        specs.append(f"+{lease_ref(session)}:{fetched_lease_ref(remote, session)}")
    else:
        gitrepo.run_git(cwd, "update-ref", "-d", fetched_lease_ref(remote, session), check=False)
    if not specs:
        return
    done = gitrepo.run_git(
        cwd, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *specs, check=False, env=_env(),
        timeout=NETWORK_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        why = "timed out" if done.timed_out else _first_line(done)
        raise RemoteError(f"fetching {session} from {remote!r} failed: {why}")


@dataclass(frozen=True)
class Update:
    """One ref to set on the remote: to ``new`` ("" deletes it), only if it still is ``expected`` (None: absent)."""

    ref: str
    new: str
    expected: str | None


def push(cwd: Path, remote: str, updates: list[Update]) -> bool:
    """Compare-and-swap push, all or nothing (``--atomic``): True if done, False if a ref was not as expected.

    RemoteError when the remote cannot be reached (the caller decides whether to try again)."""
    args = ["push", "--quiet", "--porcelain", "--no-verify"]
    if len(updates) > 1:
        args.append("--atomic")
    args += [f"--force-with-lease={u.ref}:{u.expected or ''}" for u in updates]
    args.append(remote)
    args += [f"{u.new}:{u.ref}" if u.new else f":{u.ref}" for u in updates]
    done = gitrepo.run_git(cwd, *args, check=False, env=_env(), timeout=NETWORK_TIMEOUT)
    if done.returncode == 0:
        return True
    # --porcelain: one line per ref, "!" for rejected ones; "stale info" / "fetch first" / "atomic push failed".
    if any(line.startswith("!") for line in done.out.splitlines()):
        return False
    why = "timed out" if done.timed_out else _first_line(done)
    raise RemoteError(f"push to {remote!r} failed: {why}")


def commit_object(cwd: Path, message: str, *, tree: str = EMPTY_TREE, parents: tuple[str, ...] = ()) -> str:
    """A commit object (no ref moves) with this exact message: ``commit-tree`` keeps it byte for byte."""
    if tree == EMPTY_TREE:
        gitrepo.run_git(cwd, "hash-object", "-t", "tree", "-w", "--stdin", input=b"")
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    ident = []
    has_email = os.environ.get("GIT_AUTHOR_EMAIL") or os.environ.get("EMAIL")
    if not has_email and not gitrepo.run_git(cwd, "config", "user.email", check=False).out.strip():
        name, email = gitrepo.FALLBACK_IDENTITY
        ident = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    return gitrepo.run_git(cwd, *ident, *args, input=message.encode("utf-8")).out.strip()


def message_of(cwd: Path, sha: str) -> str | None:
    """A commit's message, exactly as stored; None if the object is not here."""
    done = gitrepo.run_git(cwd, "cat-file", "commit", sha, check=False)
    if done.returncode != 0:
        return None
    raw = done.stdout.decode("utf-8", "replace")
    return raw.split("\n\n", 1)[1] if "\n\n" in raw else ""


def commit_time(cwd: Path, sha: str) -> float | None:
    """When a commit here was made (its committer time, epoch seconds); None if it is not here."""
    done = gitrepo.run_git(cwd, "show", "-s", "--format=%ct", sha, check=False)
    return float(done.out.strip()) if done.returncode == 0 and done.out.strip().isdigit() else None


def rev(cwd: Path, ref: str) -> str | None:
    done = gitrepo.run_git(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return done.out.strip() or None if done.returncode == 0 else None


def is_ancestor(cwd: Path, ancestor: str, descendant: str) -> bool:
    return gitrepo.run_git(cwd, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def only_in(cwd: Path, tip: str, base: str | None) -> list[str]:
    """Commits reachable from ``tip`` and not from ``base`` (all of them if None), oldest first."""
    args = ["rev-list", "--reverse", tip] + ([f"^{base}"] if base else [])
    return [line for line in gitrepo.run_git(cwd, *args).out.splitlines() if line]


def remote_sessions(cwd: Path) -> dict[str, list[str]]:
    """Sessions on remote-tracking branches (``refs/remotes/<remote>/iteratr/<S>``): name -> remotes, sorted."""
    out = gitrepo.run_git(cwd, "for-each-ref", "--format=%(refname)", "refs/remotes/", check=False).out
    configured = set(gitrepo.run_git(cwd, "remote", check=False).out.split())  # not a --push URL's digest
    found: dict[str, list[str]] = {}
    for ref in out.splitlines():
        remote, sep, name = ref.removeprefix("refs/remotes/").partition("/iteratr/")
        if sep and remote in configured and paths.NAME_RE.fullmatch(name):  # S.archived-… is no session
            found.setdefault(name, []).append(remote)
    return {name: sorted(remotes) for name, remotes in sorted(found.items())}


def preferred(remotes: list[str], configured: str = "") -> str:
    """Which of the remotes holding a session to use: the configured ``push`` remote, else origin, else the first."""
    for choice in (configured, "origin"):
        if choice and choice in remotes:
            return choice
    return remotes[0]
