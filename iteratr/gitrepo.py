"""Everything iteratr asks of git: the one git client.

Every git command runs the git binary through ``iteratr.procs`` (its own session, so a Ctrl+C in the
terminal reaches iteratr, which stops at a clean point, and never a ``git commit`` half-way). The
binary is both faster and more faithful than GitPython's index implementation: ``.gitignore``, hooks
config and worktrees behave exactly as they do for the user at a shell.

Two layers:

- plain functions (``run_git``, ``toplevel``, ``worktrees``, ``branches``, ``blob``, ...) for quick
  read-only questions about the repository around a directory. They never import GitPython, so
  ``iteratr status`` and ``iteratr doctor`` answer quickly;
- ``GitRepo``, opened with GitPython (which finds the repository and refuses bare ones), for what a
  build does: checks, branches, worktrees, commits. GitPython is imported only when one is opened.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iteratr import gitreads, procs
from iteratr.errors import GitError
from iteratr.gitproc import NO_GIT, GitRunning, cannot_run, checked, git_env, run_git

__all__ = ["NO_GIT", "GitRepo", "GitRunning", "run_git"]

if TYPE_CHECKING:
    import git

FALLBACK_IDENTITY = ("iteratr", "iteratr@localhost")


def toplevel(cwd: Path, env: Mapping[str, str] | None = None) -> tuple[Path, Path] | None:
    """The work-tree top around ``cwd`` and the common git dir (shared by linked worktrees); None outside one."""
    done = run_git(cwd, "rev-parse", "--show-toplevel", "--git-common-dir", check=False, env=env)
    lines = done.out.splitlines()
    if done.returncode != 0 or len(lines) < 2:
        return None
    common = Path(lines[1])
    return Path(lines[0]).resolve(), (common if common.is_absolute() else cwd / common).resolve()


def current_branch(cwd: Path, env: Mapping[str, str] | None = None) -> str | None:
    """The branch checked out in ``cwd``'s work tree; None when HEAD is detached or there is no repository."""
    done = run_git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD", check=False, env=env)
    return done.out.strip() if done.returncode == 0 and done.out.strip() else None


def version(env: Mapping[str, str] | None = None) -> str:
    """``git version 2.43.0``. Raises GitError when git is missing or cannot run."""
    return run_git(Path.cwd(), "--version", env=env).out.strip()


def worktrees(cwd: Path) -> dict[str, Path]:
    """Branch name -> path of every worktree (this one included) that has a branch checked out."""
    return parse_worktree_list(run_git(cwd, "worktree", "list", "--porcelain").out)


def branches(cwd: Path, pattern: str) -> list[str]:
    """Local branches matching ``pattern`` (a ``for-each-ref`` pattern under ``refs/heads/``)."""
    out = run_git(cwd, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{pattern}").out
    return [line for line in out.splitlines() if line]


def blob(cwd: Path, ref: str, path: str) -> bytes | None:
    """A file's bytes at ``ref``, or None if it is not there."""
    done = run_git(cwd, "cat-file", "blob", f"{ref}:{path}", check=False)
    return done.stdout if done.returncode == 0 else None


def _git_module() -> Any:
    if shutil.which("git") is None:
        raise GitError(NO_GIT, hint="install git, then run again")
    import git as gitmodule

    return gitmodule


class GitRepo:
    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self.root = Path(repo.working_tree_dir or ".").resolve()
        self._identity_args: list[str] | None = None

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        gitmodule = _git_module()
        try:
            repo = gitmodule.Repo(path, search_parent_directories=True)
        except (gitmodule.InvalidGitRepositoryError, gitmodule.NoSuchPathError):
            raise GitError(
                f"{path} is not in a git repository", hint="run `git init` and commit once, or cd into a repository"
            ) from None
        if repo.bare:
            raise GitError(f"{path} is a bare repository: iteratr needs a work tree")
        return cls(repo)

    def start(
        self, *args: str, input: bytes | None = None, hold: bool = False, timeout: float | None = None
    ) -> GitRunning:
        """``git ARGS`` started, to overlap with other work: ``.out()`` waits for it (at most ``timeout`` seconds);
        ``hold``: its input is ``send`` later. Raises GitError."""
        try:
            running = procs.start(["git", *args], cwd=self.root, env=git_env(None), input=input, hold=hold)
            return GitRunning(running, args, timeout)
        except OSError as exc:
            raise cannot_run(exc) from None

    def run(self, *args: str, input: bytes | None = None) -> str:
        """``git ARGS`` at the work tree's top: its stdout less the final newline. Raises GitError."""
        out = run_git(self.root, *args, input=input).out
        return out[:-1] if out.endswith("\n") else out

    # -- checks -----------------------------------------------------------------------------------

    def common_dir(self) -> Path:
        raw = Path(self.run("rev-parse", "--git-common-dir"))
        return (raw if raw.is_absolute() else self.root / raw).resolve()

    def current_branch(self) -> str | None:
        return current_branch(self.root)

    def has_commits(self) -> bool:
        try:
            self.run("rev-parse", "--verify", "--quiet", "HEAD")
            return True
        except GitError:
            return False

    def check_ready(self, *, detached_ok: bool = False) -> None:
        """Refuse states in which committing per iteration would go wrong. ``detached_ok``: the caller settles a
        detached HEAD itself (``session_branch.reattach``)."""
        if not self.has_commits():
            raise GitError(
                "the repository has no commits yet", hint="commit once, e.g. `git commit --allow-empty -m init`"
            )
        markers = {  # file in the git dir: (what is going on, how to get out of it)
            "MERGE_HEAD": ("a merge", "git merge --abort"),
            "rebase-merge": ("a rebase", "git rebase --abort"),
            "rebase-apply": ("a rebase or am", "git rebase --abort or git am --abort"),
            "CHERRY_PICK_HEAD": ("a cherry-pick", "git cherry-pick --abort"),
            "REVERT_HEAD": ("a revert", "git revert --abort"),
            "BISECT_LOG": ("a bisect", "git bisect reset"),
        }
        args = [arg for marker in markers for arg in ("--git-path", marker)]
        for (what, abort), raw in zip(markers.values(), self.run("rev-parse", *args).splitlines(), strict=True):
            if (self.root / raw).exists():
                raise GitError(f"{what} is in progress in {self.root}", hint=f"finish it, or abort it: {abort}")
        if not detached_ok and self.current_branch() is None:
            raise GitError("HEAD is detached", hint="check out a branch first, e.g. `git switch main`")

    def dirty_tracked(self) -> list[str]:
        """Tracked files with uncommitted changes (untracked files are fine: they stay where they are)."""
        out = self.run("status", "--porcelain", "--untracked-files=no")
        return [line[3:] for line in out.splitlines() if line.strip()]

    # -- branches and worktrees -------------------------------------------------------------------

    def branch_exists(self, branch: str) -> bool:
        try:
            self.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
            return True
        except GitError:
            return False

    def switch(self, branch: str) -> bool:
        """Check out ``branch``, creating it from HEAD if needed. Returns True if it was created."""
        if self.current_branch() == branch:
            return False
        created = not self.branch_exists(branch)
        if created:
            self.run("switch", "--quiet", "-c", branch)
        else:
            self.run("switch", "--quiet", branch)
        return created

    def switch_new(self, branch: str, base: str) -> None:
        """Create ``branch`` at ``base`` and check it out here."""
        self.run("switch", "--quiet", "-c", branch, base)

    def worktrees(self) -> dict[str, Path]:
        """Branch name -> path of every worktree that has a branch checked out."""
        return worktrees(self.root)

    def add_worktree(self, path: Path, branch: str, *, base: str = "HEAD") -> bool:
        """A linked worktree at ``path`` on ``branch`` (created at ``base`` if new). True if the branch was created."""
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.branch_exists(branch)
        if created:
            self.run("worktree", "add", "--quiet", "-b", branch, str(path), base)
        else:
            self.run("worktree", "add", "--quiet", str(path), branch)
        return created

    def rename_branch(self, old: str, new: str) -> None:
        self.run("branch", "-m", old, new)

    # -- committing -------------------------------------------------------------------------------

    def _identity(self) -> list[str]:
        """Use the user's identity; on a machine without one (cron, CI) fall back rather than fail the commit."""
        if self._identity_args is None:
            has_email = bool(os.environ.get("GIT_AUTHOR_EMAIL") or os.environ.get("EMAIL"))
            if not has_email:
                try:
                    has_email = bool(self.run("config", "user.email"))
                except GitError:
                    has_email = False
            name, email = FALLBACK_IDENTITY
            self._identity_args = [] if has_email else ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        return self._identity_args

    # -- plumbing for iteratr's own record of its commits (iteratr.run.history) -------------------

    def rev(self, ref: str) -> str | None:
        """The full sha ``ref`` names, or None if it names no commit."""
        done = run_git(self.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.out.strip() or None if done.returncode == 0 else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors."""
        return run_git(self.root, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        done = run_git(self.root, "merge-base", a, b, check=False)
        return done.out.strip() or None if done.returncode == 0 else None

    def update_ref(self, ref: str, sha: str) -> None:
        self.run("update-ref", ref, sha)

    def delete_ref(self, ref: str) -> None:
        run_git(self.root, "update-ref", "-d", ref, check=False)

    def git_dirs(self) -> list[Path]:
        """This work tree's git dir and the common one (the same unless a linked worktree): where locks live."""
        raw = self.run("rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
        common = Path(raw[1])
        return list(
            dict.fromkeys([Path(raw[0]).resolve(), (common if common.is_absolute() else self.root / common).resolve()])
        )

    def changed_paths(self, *, untracked: bool = True, against: str | None = None) -> list[str]:
        """Paths a commit of the whole work tree would add or change (``git status``), relative to the top;
        or, with ``against``, the paths whose work-tree content differs from that commit (plus untracked)."""
        found: list[str] = []
        if against is None:
            fields = self.run("status", "--porcelain=v1", "-z", "--untracked-files=all").split("\0")
            skip = False
            for entry in fields:
                if skip:
                    skip = False
                    continue
                if len(entry) > 3:
                    found.append(entry[3:])
                    skip = entry[0] in "RC"  # a rename's second field is its old name
            return found
        found = [p for p in self.run("diff", "--name-only", "-z", against).split("\0") if p]
        if untracked:
            found += [p for p in self.run("ls-files", "-o", "--exclude-standard", "-z").split("\0") if p]
        return found

    def untracked(self) -> list[str]:
        """Untracked, not ignored files, one by one (relative to the top)."""
        return [p for p in self.run("ls-files", "-o", "--exclude-standard", "-z").split("\0") if p]

    def diff_names(self, a: str, b: str) -> list[str]:
        return [p for p in self.run("diff", "--name-only", "--no-renames", "-z", a, b).split("\0") if p]

    def paths_op(self, *args: str, paths: list[str]) -> None:
        """``git ARGS`` on exactly these paths (literal, fed on stdin: no glob, no argument-length limit)."""
        if paths:
            self.run(
                "--literal-pathspecs",
                *args,
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                input="\0".join(paths).encode(),
            )

    def add_all(self, *, forced: list[str]) -> None:
        """``git add --all``, and ``forced`` staged even if a .gitignore covers them: in one git when none is ignored
        (they are named, so git says if one is), else a second one with ``--force``. Raises GitError."""
        done = run_git(self.root, "add", "--all", "--", ".", *forced, check=False)
        # Exit 1 with git's advice: named paths were ignored, all else was added. Any other failure (exit 128,
        # "adding files failed", after that same advice) staged nothing: never a commit of the session's files alone.
        if done.returncode == 1 and "ignored by one of your .gitignore files" in done.err:
            self.run("add", "--force", "--", *forced)
        else:
            checked(done, ("add", "--all"))

    def commit_staged(self, message: str, *, also_ref: str | None = None) -> str:
        """Commit the index as it is; return the new commit's full sha. ``also_ref``: a ref moved to it too.

        ``--no-verify``: a failing pre-commit hook must not make an iteration's record disappear.
        ``--cleanup=whitespace``: a line of an agent's summary starting with "#" is text, not a comment.
        """
        options = ["--quiet", "--no-verify", "--allow-empty", "--cleanup=whitespace", "-F", "-"]
        # Started first, so it is ready when the commit is made (an input never sent updates nothing).
        moving = self.start("update-ref", "--stdin", hold=True) if also_ref else None
        try:
            self.run(*self._identity(), "commit", *options, input=message.encode())
        except BaseException:
            if moving is not None:
                moving.completed()  # no input: it moves nothing
            raise
        if moving is not None and not moving.send(f"update {also_ref} HEAD\n".encode()):
            moving.completed()  # it ended before it was asked (stopped by someone): another one
            moving = self.start("update-ref", str(also_ref), "HEAD")
        try:
            sha = gitreads.loose_head(self) or self.run("rev-parse", "HEAD")
        finally:
            if moving is not None:
                moving.completed()
        if moving is not None:
            moving.out()  # the ref moved, or a GitError
        return sha

    def last_committed_iteration(self, session: str) -> int | None:
        """The ``Iteratr-Iteration`` trailer of the newest iteration commit of ``session`` on HEAD, if any
        (an "end of run" commit has no such trailer and is passed over)."""
        try:
            out = self.run(
                "log",
                "-1",
                "--fixed-strings",
                "--all-match",
                f"--grep=Iteratr-Session: {session}",
                "--grep=Iteratr-Iteration: ",
                "--format=%(trailers:key=Iteratr-Iteration,valueonly,separator=%x20)",
            )
        except GitError:
            return None
        numbers = [int(word) for word in out.split() if word.isdigit()]
        return max(numbers) if numbers else None

    def push(self, remote: str, branch: str) -> None:
        self.run("push", "--quiet", remote, f"{branch}:{branch}")

    def branches(self, pattern: str) -> list[str]:
        return branches(self.root, pattern)

    def first_commit(self, ref: str, grep: str) -> str | None:
        """The oldest commit on ``ref`` whose message holds ``grep`` (a fixed string), if any."""
        out = self.run("log", "--reverse", "--format=%H", "--fixed-strings", f"--grep={grep}", ref)
        return out.splitlines()[0] if out else None

    def parent(self, commit: str) -> str | None:
        """The first parent of ``commit``; None for a root commit."""
        try:
            return self.run("rev-parse", "--verify", "--quiet", f"{commit}^")
        except GitError:
            return None

    def attach_head(self, branch: str) -> None:
        """Point HEAD at ``branch`` without touching the index or the work tree (a detached HEAD re-attached)."""
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    def changed(self, rel_paths: list[str]) -> bool:
        """Whether any of these paths differs from HEAD (staged, unstaged or untracked)."""
        return bool(self.run("status", "--porcelain", "--", *rel_paths).strip())


def parse_worktree_list(porcelain: str) -> dict[str, Path]:
    """Branch name -> work tree, from ``git worktree list --porcelain``."""
    result: dict[str, Path] = {}
    path: Path | None = None
    for line in porcelain.splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        elif line.startswith("branch refs/heads/") and path is not None:
            result[line[len("branch refs/heads/") :]] = path
    return result
