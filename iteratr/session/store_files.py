"""Where a session's files live, and small helpers of the store (``iteratr.session.store`` re-exports the public
ones): the snapshot's place, the data dir's ``.gitignore``, the end of a log's last whole line, a file's digest."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from iteratr import paths, safe_open
from iteratr.errors import UsageError
from iteratr.session import journal
from iteratr.session.snapshot import SNAPSHOT_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def snapshot_path(data_dir: Path, name: str) -> Path | None:
    """Where the snapshot of session ``name`` lives: under the git dir of the work tree holding ``data_dir``,
    keyed by the data dir's path (one git dir serves every linked worktree), else in ``S/cache/``.

    Found by reading ``.git`` (``paths.git_dirs``), never by running git: ``iteratr tool`` comes here on
    every call.
    """
    absolute = Path(os.path.abspath(data_dir))
    for folder in absolute.parents:
        if os.path.lexists(folder / ".git"):
            found = paths.git_dirs(folder)
            if found is None:
                return None
            key = f"{zlib.crc32(os.fsencode(absolute)):08x}"
            return found[1] / "iteratr" / paths.CACHE_DIR / key / name / SNAPSHOT_FILE
    return absolute / name / paths.CACHE_DIR / SNAPSHOT_FILE


def write_data_gitignore(data_dir: Path) -> None:
    """``<data_dir>/.gitignore`` with iteratr's content, unless it has it; never through a link (exit 2)."""
    want = paths.DATA_DIR_GITIGNORE.encode()
    try:
        have = safe_open.read_bytes(data_dir, ".gitignore", len(want) + 1)
    except FileNotFoundError:
        have = None
    if have == want:
        return
    if have is not None and not have.startswith(want.split(b"\n", 1)[0]):
        # Someone else's .gitignore (``--data-dir src``): replacing it would un-ignore what they ignore (.env).
        raise UsageError(
            f"data dir {data_dir} has a .gitignore iteratr did not write: use a directory of iteratr's own "
            "(default .iteratr), so that file stays as it is"
        )
    safe_open.atomic_write(data_dir, ".gitignore", want, 0o644)


def after_last_newline(f: Any, size: int) -> int:
    """The offset just past the last ``\\n`` of the first ``size`` bytes, read backwards in chunks (a torn tail is
    short: this never reads the whole log)."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        f.seek(start)
        found: int = f.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def digest_of(where: Path, rel: str | None) -> bytes | None:
    """The digest recorded in ``where`` (``rel`` None), or that of the file ``where/rel`` (never through a link)."""
    try:
        return where.read_bytes() if rel is None else journal.digest(safe_open.read_bytes(where, rel))
    except (OSError, UsageError):
        return None
