"""A session's event log where the local data dir has none: in the worktree that has its branch, or on the branch.

``iteratr tool``'s read commands use it for a session that exists only on its branch ``iteratr/S`` (run from
``main`` after the build switched back, or while it runs in a ``--worktree``), reading it as ``iteratr
status`` does: the live file of the worktree that has the branch checked out, else the branch's last commit.

Only the fallback imports this, and it asks git through ``iteratr.gitrepo``'s plain functions (the git
binary, never GitPython): the tool path's normal case, a session on disk, never pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from iteratr import paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def read(data_dir: Path, name: str, cwd: Path | None = None) -> tuple[str, bytes] | None:
    """``(where, the log's bytes)`` of session ``name`` under the data dir ``data_dir``, or None (no repository,
    a data dir outside it, or no such branch or log)."""
    from iteratr import gitrepo

    here = Path.cwd() if cwd is None else cwd
    found = gitrepo.toplevel(here)
    if found is None:
        return None
    root = found[0]
    try:
        rel = Path(os.path.realpath(data_dir)).relative_to(os.path.realpath(root))
    except ValueError:
        return None
    branch = paths.branch_name(name)
    where = gitrepo.worktrees(root).get(branch)
    from iteratr.session import segments, tree_log

    if where is not None:
        log = where / rel / name / paths.EVENTS_FILE
        if log.is_file():  # the closed segments, then events.jsonl (iteratr.session.segments)
            with segments.LogView(log.parent) as view:
                return str(log), view.read()
    path = (rel / name / paths.EVENTS_FILE).as_posix()
    blob = tree_log.read(root, f"refs/heads/{branch}", (rel / name).as_posix())
    return (f"{branch}:{path}", blob) if blob is not None else None


def store_of(data_dir: Path, name: str, cwd: Path | None = None) -> tuple[str, Any] | None:
    """``(where, a Store)`` of session ``name`` found as ``read`` finds it, without reading its log into memory: the
    worktree's store, else a store on the branch's files mirrored under the git dir (``iteratr.freshest``, the
    mirror ``status`` reads), read through its snapshot, so a read costs what is live, not the log (a million
    events' log is 240 MB). None as for ``read``."""
    from iteratr import freshest, gitrepo

    here = Path.cwd() if cwd is None else cwd
    found = gitrepo.toplevel(here)
    if found is None:
        return None
    root, common = found
    try:
        rel = Path(os.path.realpath(data_dir)).relative_to(os.path.realpath(root))
    except ValueError:
        return None
    hit = freshest.find(root, common, gitrepo.worktrees(root), name, rel)
    return (hit.label, hit.store) if hit.store is not None else None
