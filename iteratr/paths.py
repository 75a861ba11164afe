"""Where a session's files live, and which session names are allowed.

Kept free of heavy imports: ``iteratr tool`` imports this on every call.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from iteratr.errors import UsageError

DEFAULT_DATA_DIR = ".iteratr"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "1-64 characters from A-Z a-z 0-9 _ -"

EVENTS_FILE = "events.jsonl"
TASKS_FILE = "tasks.yaml"
INBOX_FILE = "inbox.md"
AGENT_LOG = "agent.log"
RUN_LOG = "run.log"
CACHE_DIR = "cache"

# Written into <data_dir>/.gitignore: runtime files that never belong in a commit.
DATA_DIR_GITIGNORE = """\
# Written by iteratr. Runtime files of a session never belong in git;
# events.jsonl and tasks.yaml do, and are committed on the branch iteratr/<session>.
*/inbox.*
*/*.log
*/*.log.*
*/*.lock
*/cache/
*/rejected/
**/*.iteratr-tmp
worktrees/
# Itself too: a checkout that only hosts --worktree sessions shows no trace of iteratr. On a session
# branch this file is committed anyway (iteratr adds it with --force; tracked files are never ignored).
/.gitignore
"""


def validate_session_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"invalid session name {name!r}: use {NAME_RULE}")
    return name


def session_name_from_spec(spec: str | os.PathLike[str]) -> str:
    """``specs/user-auth.md`` -> ``user-auth``; characters outside the allowed set become ``-``."""
    stem = Path(spec).stem
    name = re.sub(r"[^A-Za-z0-9_-]", "-", stem)[:64]
    return validate_session_name(name or "session")


def data_dir_from(flag: str | None, root: Path | None = None) -> Path:
    """``--data-dir`` flag, else ``ITERATR_DATA_DIR``, else ``.iteratr``; relative to ``root``.

    Without ``root``: the cwd when the directory exists there, else the top of the work tree around the
    cwd, as ``build`` resolves it. A call from a subdirectory reaches the session; it never starts a
    stray one there.
    """
    raw = flag or os.environ.get("ITERATR_DATA_DIR") or DEFAULT_DATA_DIR
    path = Path(raw)
    if path.is_absolute():
        return path
    if root is None:
        cwd = Path.cwd()
        root = cwd if (cwd / path).is_dir() else work_tree_top(cwd)
    return root / path


def work_tree_top(cwd: Path) -> Path:
    """The nearest directory from ``cwd`` up holding ``.git`` (a file in a linked worktree), else ``cwd``.

    Without git: ``iteratr tool`` must not pay for a ``git rev-parse`` on every call.
    """
    for folder in (cwd, *cwd.parents):
        if (folder / ".git").exists():
            return folder
    return cwd


def session_dir(data_dir: Path, name: str) -> Path:
    return data_dir / validate_session_name(name)


def branch_name(name: str) -> str:
    return f"iteratr/{name}"


def shown(path: Path, cwd: Path) -> str:
    """``path`` as a user would type it from ``cwd``: relative when it is below, else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)
