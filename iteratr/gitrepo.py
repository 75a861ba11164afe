"""Everything iteratr asks of git. The only module that uses GitPython.

Commands go through GitPython's ``repo.git`` (the git binary), which is both faster and more
faithful than its index implementation: ``.gitignore``, hooks config and worktrees behave exactly
as they do for the user at a shell.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iteratr.errors import GitError

if TYPE_CHECKING:
    import git

FALLBACK_IDENTITY = ("iteratr", "iteratr@localhost")


def _git_module() -> Any:
    if shutil.which("git") is None:
        raise GitError("git is not installed or not on PATH", hint="install git, then run again")
    import git as gitmodule

    return gitmodule


class GitRepo:
    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self.g = repo.git
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

    def run(self, *args: str, **kwargs: Any) -> str:
        gitmodule = _git_module()
        # Its own session, as for the agent and hooks: a Ctrl+C in the terminal goes to iteratr, which
        # stops at a clean point, and never kills a `git commit` of the iteration half-way.
        kwargs.setdefault("start_new_session", True)
        try:
            return str(self.g.execute(["git", *args], **kwargs))
        except gitmodule.GitCommandError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().replace("\n", " ").removeprefix("stderr: ").strip("' ")
            raise GitError(f"git {' '.join(args[:3])} failed: {detail or exc}") from None

    # -- checks -----------------------------------------------------------------------------------

    def common_dir(self) -> Path:
        raw = Path(self.run("rev-parse", "--git-common-dir"))
        return (raw if raw.is_absolute() else self.root / raw).resolve()

    def current_branch(self) -> str | None:
        try:
            return self.run("symbolic-ref", "--quiet", "--short", "HEAD")
        except GitError:
            return None

    def has_commits(self) -> bool:
        try:
            self.run("rev-parse", "--verify", "--quiet", "HEAD")
            return True
        except GitError:
            return False

    def check_ready(self) -> None:
        """Refuse states in which committing per iteration would go wrong."""
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
        if self.current_branch() is None:
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

    def worktrees(self) -> dict[str, Path]:
        """Branch name -> path of every worktree that has a branch checked out."""
        return parse_worktree_list(self.run("worktree", "list", "--porcelain"))

    def add_worktree(self, path: Path, branch: str) -> bool:
        """A linked worktree at ``path`` on ``branch`` (created from HEAD if new). True if the branch was created."""
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.branch_exists(branch)
        if created:
            self.run("worktree", "add", "--quiet", "-b", branch, str(path), "HEAD")
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

    def commit_all(self, message: str, *, everything: bool, force_paths: list[Path]) -> str:
        """Stage the session files (forced, whatever .gitignore says) and, if ``everything``, all the
        work tree admits; commit; return the new commit's short sha.

        ``--no-verify``: a failing pre-commit hook must not make an iteration's record disappear.
        """
        if everything:
            self.run("add", "--all")
        rel = [str(p.relative_to(self.root)) for p in force_paths if p.exists()]
        if rel:
            self.run("add", "--force", "--", *rel)
        import tempfile

        with tempfile.TemporaryFile() as stdin:
            stdin.write(message.encode())
            stdin.seek(0)
            # --cleanup=whitespace: a line of an agent's summary starting with "#" is text, not a comment.
            options = ["--quiet", "--no-verify", "--allow-empty", "--cleanup=whitespace", "-F", "-"]
            self.run(*self._identity(), "commit", *options, istream=stdin)
        return self.run("rev-parse", "--short", "HEAD")

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

    def head(self) -> str:
        return self.run("rev-parse", "HEAD")

    def push(self, remote: str, branch: str) -> None:
        self.run("push", "--quiet", remote, f"{branch}:{branch}")

    def show(self, ref: str, path: str) -> bytes | None:
        """A file's bytes at ``ref``, or None if it is not there."""
        import subprocess

        proc = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=self.root, capture_output=True, stdin=subprocess.DEVNULL
        )
        return proc.stdout if proc.returncode == 0 else None

    def branches(self, pattern: str) -> list[str]:
        out = self.run("for-each-ref", "--format=%(refname:short)", f"refs/heads/{pattern}")
        return [line for line in out.splitlines() if line]


def parse_worktree_list(porcelain: str) -> dict[str, Path]:
    """Branch name -> work tree, from ``git worktree list --porcelain``. Pure, so ``iteratr status``
    can use it without GitPython."""
    result: dict[str, Path] = {}
    path: Path | None = None
    for line in porcelain.splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        elif line.startswith("branch refs/heads/") and path is not None:
            result[line[len("branch refs/heads/") :]] = path
    return result
