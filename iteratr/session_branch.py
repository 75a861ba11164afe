"""Putting a session on its branch ``iteratr/S``: switch, worktree, resume, reset.

The user's uncommitted work is never carried along or lost: switching branches with changes to
tracked files is refused, and ``--worktree`` leaves the user's checkout alone altogether.
``--reset`` archives the old branch under a new name instead of deleting anything.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from iteratr import paths
from iteratr.errors import GitError
from iteratr.gitrepo import GitRepo
from iteratr.session.checkpoint import CHECKPOINT_FILE


def worktree_path(repo: GitRepo, data_rel: Path, name: str) -> Path:
    return repo.root / data_rel / "worktrees" / name


def prepare(repo: GitRepo, name: str, *, data_rel: Path, worktree: bool, reset: bool) -> tuple[Path, str]:
    """Check out the session's branch where the run will work; return the work tree and how it was done."""
    branch = paths.branch_name(name)
    where = repo.worktrees().get(branch)
    here = repo.root
    if where is not None and where != here and not worktree:
        # The session already lives in a linked worktree: run there rather than fight over the branch.
        worktree = True
    resetting = reset and repo.branch_exists(branch)
    if not worktree and (resetting or repo.current_branch() != branch):
        _refuse_dirty(repo, branch)  # before anything changes: a refused run must not have archived the session
    exclude_runtime_files(repo, data_rel)
    archived = archive(repo, name) if resetting else ""
    if worktree:
        return _in_worktree(repo, name, branch, data_rel, where, archived)
    if repo.current_branch() == branch and not archived:
        return here, "resumed"
    if archived:
        base = session_base(repo, name, archived) if repo.current_branch() == archived else "HEAD"
        repo.switch_new(branch, base)
        _clear_session_files(here / data_rel / name)
        return here, f"started afresh; the old one is {archived}"
    base_branch = repo.current_branch() or "HEAD"
    created = repo.switch(branch)
    return here, f"created from {base_branch}" if created else "resumed"


def _in_worktree(
    repo: GitRepo, name: str, branch: str, data_rel: Path, where: Path | None, archived: str
) -> tuple[Path, str]:
    if where is not None and where == repo.root:
        raise GitError(
            f"{branch} is checked out in this checkout, so it cannot also get a worktree",
            hint="run without --worktree, or switch this checkout to another branch first",
        )
    if where is not None:
        if archived:
            wt = GitRepo.open(where)
            _refuse_dirty(wt, branch)
            wt.switch_new(branch, session_base(repo, name, archived))
            _clear_session_files(where / data_rel / name)
            return where, f"worktree, started afresh; the old one is {archived}"
        return where, "worktree, resumed"
    path = worktree_path(repo, data_rel, name)
    if path.exists() and any(path.iterdir()):
        raise GitError(f"{path} exists but is not a worktree of {branch}", hint="move it away, then run again")
    base = session_base(repo, name, archived) if archived else "HEAD"
    # After an archive the branch is gone (renamed), so it is created again, at the old session's base.
    if repo.add_worktree(path, branch, base=base):
        how = "worktree, created" if not archived else f"worktree, started afresh; the old one is {archived}"
    else:
        how = "worktree, resumed"
    _write_data_gitignore(repo.root / data_rel)
    if archived:
        _clear_session_files(path / data_rel / name)
    return path, how


def reattach(repo: GitRepo, name: str) -> str:
    """A detached HEAD the session's agent left (a run killed before it could switch back) goes back on ``iteratr/S``.

    Only when it is safely the session's: HEAD is iteratr's last commit (``refs/iteratr/S/last``) or on top of
    it, and the branch is below HEAD, so moving the branch up to HEAD loses nothing and brings the agent's
    commits on the detached HEAD along. Work tree and index stay as they are. Called with the session's lock
    held. Returns the warning to print; raises GitError if the detached HEAD is not the session's.
    """
    branch = paths.branch_name(name)
    head, last = repo.rev("HEAD"), repo.rev(f"refs/iteratr/{name}/last")
    tip = repo.rev(f"refs/heads/{branch}")
    if head is None or last is None or not repo.is_ancestor(last, head) or (tip and not repo.is_ancestor(tip, head)):
        raise GitError("HEAD is detached", hint="check out a branch first, e.g. `git switch -`")
    repo.update_ref(f"refs/heads/{branch}", head)
    repo.attach_head(branch)
    came = f"; {branch} moved up to it, keeping the commits made there" if head != tip else ""
    return f"HEAD was left detached at {head[:9]}, on top of iteratr's last commit: back on {branch}{came}"


def archive(repo: GitRepo, name: str) -> str:
    """Rename ``iteratr/S`` to ``iteratr/S.archived-<UTC time>``: a reset never destroys history."""
    branch = paths.branch_name(name)
    archived = f"{branch}.archived-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    repo.rename_branch(branch, archived)
    # iteratr's record of its last commit (iteratr.run.history) belongs to the archived history now.
    repo.delete_ref(f"refs/iteratr/{name}/last")
    return archived


def session_base(repo: GitRepo, name: str, ref: str) -> str:
    """The commit a session's branch grew from: the parent of its first iteratr commit (or ``ref`` itself)."""
    first = repo.first_commit(ref, f"Iteratr-Session: {name}")
    return (repo.parent(first) if first else None) or ref


def _refuse_dirty(repo: GitRepo, branch: str) -> None:
    dirty = repo.dirty_tracked()
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GitError(
            f"uncommitted changes to tracked files ({shown}) would be carried onto {branch}",
            hint="commit or stash them, or use --worktree to leave this checkout alone",
        )


def _clear_session_files(session_dir: Path) -> None:
    """After a reset the fresh branch may still hold the old session's files (e.g. merged into main)."""
    for file in (paths.EVENTS_FILE, paths.TASKS_FILE, CHECKPOINT_FILE):
        (session_dir / file).unlink(missing_ok=True)
    shutil.rmtree(session_dir / paths.CACHE_DIR, ignore_errors=True)
    shutil.rmtree(session_dir / "events", ignore_errors=True)  # the closed segments (iteratr.session.segments)
    for taken in session_dir.glob("inbox.taking-*"):
        taken.unlink(missing_ok=True)


def exclude_runtime_files(repo: GitRepo, data_rel: Path) -> None:
    """Ignore the sessions' runtime files on every branch, through ``<git-common-dir>/info/exclude``.

    ``<data_dir>/.gitignore`` lives on the session branch, so after ``git switch main`` the inbox,
    logs and cache left in the work tree would show as untracked, one ``git add -A`` away from a
    commit. The exclude file is not versioned and applies to every branch and worktree.
    """
    prefix = "/" + data_rel.as_posix().strip("/") + "/"
    wanted = [
        prefix + line
        for line in paths.DATA_DIR_GITIGNORE.splitlines()
        if line.strip() and not line.startswith("#") and line != "/.gitignore"
    ]
    _exclude(repo.common_dir(), wanted, "runtime files of its sessions (inbox, logs, cache), on every branch")


def exclude_log_file(work_tree: Path, log_file: Path) -> None:
    """A ``--log-file`` inside the work tree is never committed: it and its rotated copies go into the
    exclude file (found by reading ``.git``, before any git runs). Outside the work tree: nothing to do."""
    try:
        rel = log_file.resolve().relative_to(work_tree.resolve())
    except ValueError:
        return
    found = paths.git_dirs(work_tree)
    if found is None:
        return
    line = "/" + _glob_escape(rel.as_posix())
    _exclude(found[1], [line, line + ".[0-9]"], "the run's log file (--log-file), never committed")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]!#\\ " else c for c in text)


def _exclude(common_dir: Path, wanted: list[str], why: str) -> None:
    path = common_dir / "info" / "exclude"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        missing = [line for line in wanted if line not in text.splitlines()]
        if not missing:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "" if not text or text.endswith("\n") else "\n"
        block = "\n".join([f"# iteratr: {why}", *missing])
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{head}{block}\n")
    except (OSError, UnicodeDecodeError):
        pass  # only a convenience: the session branch's own .gitignore still keeps them out of its commits


def _write_data_gitignore(data_dir: Path) -> None:
    from iteratr.session.store import write_data_gitignore

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    write_data_gitignore(data_dir)  # never through a link: a committed .gitignore -> ~/x is refused
