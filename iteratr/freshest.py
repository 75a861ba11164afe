"""The freshest copy of a session, read through the store's snapshot (status, report, a build's first look).

From the freshest copy, as ``status`` always read it:

1. the worktree that has ``iteratr/S`` checked out (this checkout, or a ``--worktree`` run's): the store there is
   read as any ``iteratr tool`` call reads it, from its snapshot plus the lines after it;
2. else the branch's last commit. Its committed session files are mirrored under the git dir, each written again
   only when its blob id changed (``git ls-tree``; a blob is streamed to its file, never held in memory), and a
   store is read on the mirror: the same snapshot, so a branch that moved costs the copy of what changed and the
   new lines, not a replay.

Either way the state equals a full replay (the store's promise) and memory stays what the live state needs. Nothing
here takes the session's lock or writes under the data dir; what is written (the mirror, the store's snapshot of
it) is cache under the git dir, which git never carries.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from iteratr import paths
from iteratr.errors import IteratrError
from iteratr.gitreads import GIT_ENV
from iteratr.session.state import State
from iteratr.session.store import Store

MIRROR_DIR = "mirror"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Found:
    """Where the session was read from and what it holds."""

    source: str  # "checkout", "worktree" or "branch"
    session_dir: Path | None  # the live session dir on disk (None: read from the branch)
    label: str  # the log as a person names it: a path, or ``branch:path``
    log: Path | None  # the log file the state was read from (the mirror's, for a branch); None: no log
    store: Store | None

    def state(self) -> State:
        """The live state (an empty one when there is no log)."""
        if self.store is None:
            return State()
        return self.store.load()


def find(root: Path, common_dir: Path, worktrees: dict[str, Path], name: str, data_rel: Path) -> Found:
    """The freshest copy of session ``name`` (see the module doc)."""
    branch = paths.branch_name(name)
    where = worktrees.get(branch)
    if where is not None:
        data_dir = where / data_rel
        log = data_dir / name / paths.EVENTS_FILE
        if log.is_file():
            source = "checkout" if where == root else "worktree"
            return Found(source, log.parent, str(log), log, Store(data_dir, name))
    rel = (data_rel / name).as_posix()
    label = f"{branch}:{rel}/{paths.EVENTS_FILE}"
    mirror = mirror_branch(root, common_dir, f"refs/heads/{branch}", name, data_rel)
    if mirror is None:
        return Found("branch", None, label, None, None)
    return Found("branch", None, label, mirror / name / paths.EVENTS_FILE, Store(mirror, name))


def mirror_branch(root: Path, common_dir: Path, ref: str, name: str, data_rel: Path) -> Path | None:
    """The committed files of session ``name`` at ``ref``, copied to a data dir under the git dir (only the files
    whose blob changed since the last copy); that data dir, or None when ``ref`` has no log of the session."""
    rel = (data_rel / name).as_posix()
    listed = _git(root, "ls-tree", "-r", "-z", ref, "--", f"{rel}/")
    if listed is None:
        return None
    blobs: dict[str, str] = {}
    for entry in listed.split(b"\0"):
        head, _, path = entry.partition(b"\t")
        fields = head.split()
        # Regular files only: a committed link is never followed, here or by the store (safe_open refuses it).
        if len(fields) == 3 and fields[1] == b"blob" and fields[0] in (b"100644", b"100755"):
            inside = os.fsdecode(path)[len(rel) + 1 :]
            if inside and ".." not in Path(inside).parts:
                blobs[inside] = fields[2].decode()
    if paths.EVENTS_FILE not in blobs:
        return None
    key = f"{zlib.crc32(f'{ref}:{rel}'.encode()):08x}"
    top = common_dir / "iteratr" / MIRROR_DIR / key
    data_dir = top / "data"
    have = _manifest(top)
    for inside, oid in blobs.items():
        target = data_dir / name / inside
        if have.get(inside) != oid or not target.is_file():
            _copy_blob(root, oid, target)
    for inside in set(have) - set(blobs):
        with contextlib.suppress(OSError):
            (data_dir / name / inside).unlink()
    _write_manifest(top, blobs)
    return data_dir


def _git(root: Path, *args: str) -> bytes | None:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return done.stdout if done.returncode == 0 else None


def _copy_blob(root: Path, oid: str, target: Path) -> None:
    """Stream blob ``oid`` to ``target`` (replaced whole, atomically): a big log is never held in memory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    env = {**os.environ, **GIT_ENV}
    try:
        with open(temp, "wb") as out:
            done = subprocess.run(
                ["git", "cat-file", "blob", oid], cwd=root, env=env, stdout=out, stderr=subprocess.PIPE, check=False
            )
        if done.returncode != 0:
            raise IteratrError(f"git cat-file blob {oid} failed: {done.stderr.decode(errors='replace').strip()}")
        os.replace(temp, target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _manifest(top: Path) -> dict[str, str]:
    try:
        found = json.loads((top / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write_manifest(top: Path, blobs: dict[str, str]) -> None:
    temp = top / f".{MANIFEST}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(blobs, sort_keys=True))
    os.replace(temp, top / MANIFEST)
