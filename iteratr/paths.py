"""Where a session's files live, and which session names are allowed.

Kept free of heavy imports: ``iteratr tool`` imports this on every call.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from iteratr.errors import UsageError

DEFAULT_DATA_DIR = ".iteratr"
PROJECT_CONFIG = "iteratr.yml"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "1-64 characters from A-Z a-z 0-9 _ -"

EVENTS_FILE = "events.jsonl"
TASKS_FILE = "tasks.yaml"
INBOX_FILE = "inbox.md"
AGENT_LOG = "agent.log"
CACHE_DIR = "cache"
REPORT_FILE = "report.html"  # `iteratr report`'s default output, git-ignored below

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
*/prompts/
*/report.html
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


# -- the one resolver: every command finds the work tree, the data dir and the project config this way ----


def work_tree_top(cwd: Path) -> Path:
    """The nearest directory from ``cwd`` up holding ``.git`` (a file in a linked worktree), else ``cwd``.

    Without git: ``iteratr tool`` must not pay for a ``git rev-parse`` on every call.
    """
    for folder in (cwd, *cwd.parents):
        if (folder / ".git").exists():
            return folder
    return cwd


def project_config_path(cwd: Path) -> Path:
    """The project's ``iteratr.yml``: at the top of the work tree around ``cwd`` (``cwd`` itself outside git)."""
    return work_tree_top(Path(cwd).absolute()) / PROJECT_CONFIG


def resolve_data_dir(raw: str | os.PathLike[str], cwd: Path, top: Path | None = None) -> Path:
    """The data dir ``raw`` (a setting: flag, env, config or default) as an absolute path.

    A relative one is taken from ``cwd`` when the directory exists there, else from ``top`` (default: the
    top of the work tree around ``cwd``). So a command run from a subdirectory reaches the sessions kept
    at the top, and never starts a stray one in the subdirectory.
    """
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    if (cwd / path).is_dir():
        return cwd / path
    return (work_tree_top(cwd) if top is None else top) / path


def data_dir_in_tree(raw: str | os.PathLike[str], root: Path, cwd: Path) -> Path:
    """The data dir relative to the work tree ``root``: a session's files are committed, so they live inside it.

    Raises UsageError for a data dir outside the work tree, the work tree's top itself, or one inside ``.git``.
    """
    return check_data_dir(resolve_data_dir(raw, cwd, top=root), root, raw)


def check_data_dir(absolute: Path, root: Path, raw: object) -> Path:
    """``absolute`` relative to the work tree ``root``, or UsageError (exit 2) where no data dir may be.

    Outside the work tree the session's files would be written anywhere and never committed; the top
    itself would have iteratr replace the project's own ``.gitignore``; inside ``.git`` (any component
    named so: a submodule's too) git never commits them and iteratr would write into git's own files.
    """
    try:
        rel = absolute.resolve().relative_to(root.resolve())
    except ValueError:
        raise UsageError(
            f"data_dir {raw} is outside the repository {root}: the session's files are committed, "
            "so use a directory inside it (default .iteratr)"
        ) from None
    if rel == Path("."):
        raise UsageError("data_dir cannot be the repository root: use a subdirectory such as .iteratr")
    if ".git" in rel.parts:
        raise UsageError(f"data_dir {raw} is inside .git, where git never commits it: use a directory such as .iteratr")
    return rel


def git_dirs(top: Path) -> tuple[Path, Path] | None:
    """(git dir, common git dir) of the work tree whose top is ``top``, read from ``.git`` without running git.

    ``.git`` is the directory itself, or in a linked worktree a file ``gitdir: <path>`` whose directory
    names the shared one in its ``commondir`` file. None when there is no (readable) ``.git``.
    """
    dot_git = top / ".git"
    try:
        if dot_git.is_dir():
            return dot_git, dot_git
        text = dot_git.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    git_dir = top / text[len("gitdir:") :].strip()
    try:
        common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        common = git_dir
    return git_dir, Path(os.path.normpath(common))


def data_dir_from(flag: str | None, cwd: Path | None = None) -> Path:
    """``iteratr tool``'s data dir: ``--data-dir``, else ``ITERATR_DATA_DIR``, else ``.iteratr``, resolved as
    ``resolve_data_dir`` does and checked as every command checks it (``check_data_dir``) against the top of
    the work tree around ``cwd`` (the tool reads no config file: it runs dozens of times per iteration)."""
    here = Path.cwd() if cwd is None else cwd
    raw = flag or os.environ.get("ITERATR_DATA_DIR") or DEFAULT_DATA_DIR
    top = work_tree_top(here)
    absolute = resolve_data_dir(raw, here, top)
    check_data_dir(absolute, top, raw)
    return absolute


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
