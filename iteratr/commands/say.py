"""``iteratr say``: append a message to a session's inbox, whether or not a build is running.

The inbox to write is the one the session's build reads (or will read): when the branch
``iteratr/S`` is checked out in a linked worktree, that worktree's data dir; otherwise the data
dir of the current checkout. Sessions are found in both places, so ``say`` run from the main
checkout reaches a session that runs with ``--worktree``. The message itself is appended by
``inbox.append`` in one write, which is safe against a build taking the inbox at the same moment.
GitPython is imported only through ``iteratr.gitrepo``, inside the functions that need it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iteratr import paths
from iteratr.errors import GitError, UsageError
from iteratr.run import inbox

if TYPE_CHECKING:
    from iteratr.gitrepo import GitRepo

SESSION_FILES = (paths.EVENTS_FILE, paths.INBOX_FILE)


@dataclass(frozen=True)
class Where:
    """Where a session's files live, as far as ``say`` can tell."""

    session_dir: Path
    worktree: Path | None  # the linked worktree the session's branch is checked out in, if not this checkout


def say(*, name: str | None, data_dir: str | None, text: str) -> str:
    """Append ``text`` to the inbox of session ``name`` (or the one implied); return the line to print."""
    cwd = Path.cwd()
    repo = _open_repo(cwd)
    local_data = _local_data_dir(cwd, data_dir, repo.root if repo is not None else None)
    sessions = find_sessions(local_data, repo)
    session = _choose(name, sessions, local_data)
    where = sessions[session]
    where.session_dir.mkdir(parents=True, exist_ok=True)  # a session known only by its branch
    path = inbox.append(where.session_dir, text)
    running = repo is not None and _build_running(repo, session)
    shown = paths.shown(path, cwd)
    if running:
        return f"message for session {session} saved to {shown}; the running build puts it into the next prompt"
    return (
        f"message for session {session} saved to {shown}; no build is running, "
        "so it will be picked up when the next build starts"
    )


def find_sessions(local_data: Path, repo: GitRepo | None) -> dict[str, Where]:
    """Every session ``say`` can reach: name -> where its inbox is.

    A session whose branch is checked out in some worktree lives there (the build runs there);
    sessions in the local data dir and sessions known only by an ``iteratr/S`` branch use the
    local data dir.
    """
    found: dict[str, Where] = {}
    if local_data.is_dir():
        for entry in sorted(local_data.iterdir()):
            if entry.is_dir() and paths.NAME_RE.fullmatch(entry.name) and _is_session_dir(entry):
                found[entry.name] = Where(entry, None)
    if repo is None:
        return found
    rel = _relative(local_data, repo.root)
    prefix = paths.branch_name("")
    for branch in repo.branches(prefix + "*"):
        session = branch[len(prefix) :]
        if paths.NAME_RE.fullmatch(session) and session not in found:
            found[session] = Where(local_data / session, None)
    if rel is None:
        return found  # an absolute data dir outside the repository: no worktree has its own copy
    for branch, tree in repo.worktrees().items():
        session = branch[len(prefix) :] if branch.startswith(prefix) else ""
        if not paths.NAME_RE.fullmatch(session):
            continue
        here = tree.resolve() == repo.root
        found[session] = Where(tree / rel / session, None if here else tree)
    return found


def _choose(name: str | None, sessions: dict[str, Where], local_data: Path) -> str:
    listed = ", ".join(sorted(sessions)) or "none"
    if name:
        paths.validate_session_name(name)
        if name not in sessions:
            raise UsageError(f"no session {name!r} in {local_data} or on an iteratr/* branch; sessions there: {listed}")
        return name
    env_name = os.environ.get("ITERATR_SESSION")
    if env_name:
        return _choose(env_name, sessions, local_data)
    if len(sessions) == 1:
        return next(iter(sessions))
    if not sessions:
        raise UsageError(f"no session found in {local_data} or on an iteratr/* branch: start one with `iteratr build`")
    raise UsageError(f"several sessions ({listed}): choose one with --name")


def _is_session_dir(path: Path) -> bool:
    return any((path / file).is_file() for file in SESSION_FILES)


def _local_data_dir(cwd: Path, flag: str | None, root: Path | None = None) -> Path:
    """The data dir as ``build`` would resolve it here: flag, env, config files, default.

    A relative one is taken from ``cwd`` when it exists there, else from the repository ``root``:
    run from a subdirectory, ``say`` must reach the sessions built at the top (as ``status`` does),
    never write an inbox that no build reads.
    """
    from iteratr import config

    cfg = config.load_config(cwd=cwd, flags={"data_dir": flag} if flag else {})
    path = Path(cfg.data_dir).expanduser()
    if not path.is_absolute():
        # ``build`` resolves a relative data dir from the repository root's point of view via cwd.
        here = cwd / path
        path = root / path if root is not None and not here.is_dir() else here
    return path.resolve()


def _open_repo(cwd: Path) -> GitRepo | None:
    """The repository around ``cwd``, or None: ``say`` still works on a plain directory."""
    from iteratr.gitrepo import GitRepo

    try:
        return GitRepo.open(cwd)
    except GitError:
        return None


def _relative(path: Path, root: Path) -> Path | None:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return rel if rel != Path(".") else None


def _build_running(repo: GitRepo, session: str) -> bool:
    from iteratr.run.runlock import is_held, lock_path

    try:
        return is_held(lock_path(repo.common_dir(), session))
    except GitError:
        return False
