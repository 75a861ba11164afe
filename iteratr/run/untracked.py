"""What a commit must leave out: the user's own untracked files, and files too big to commit.

**The user's files stay the user's.** Files that were untracked when the run started (an ``iteratr.yml`` that
``iteratr setup --project`` wrote, a template from ``gen-template``, another session's spec, notes) belong to
the user, not to the session. Committing them on ``iteratr/S`` would take them out of the user's checkout at
the next ``git checkout main``. So the run records them (path, size and content hash) when it starts, and a
commit leaves out every one that is still exactly as it was. One that the agent changed during an iteration is
the agent's work and is committed.

**Big files stay in the work tree.** A file over ``max_file_size`` (a dataset, a build artefact, a core dump)
is not committed; the output and the commit message list it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iteratr.gitrepo import GitRepo

HASH_LIMIT = 64 * 1024 * 1024  # above this, size and mtime stand for the content: hashing would cost too much


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime_ns: int
    digest: str | None


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = path.stat(follow_symlinks=False)
    except OSError:
        return None
    digest = None
    if path.is_file() and not path.is_symlink() and st.st_size <= HASH_LIMIT:
        sha = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(block)
        except OSError:
            return None
        digest = sha.hexdigest()
    return Fingerprint(st.st_size, st.st_mtime_ns, digest)


def snapshot(root: Path, untracked: list[str]) -> dict[str, Fingerprint]:
    """Fingerprints of the files untracked at the start of the run (paths relative to ``root``)."""
    prints = {}
    for rel in untracked:
        found = fingerprint(root / rel)
        if found is not None:
            prints[rel] = found
    return prints


def load_or_snapshot(repo: GitRepo, session: str, *, keep: bool) -> dict[str, Fingerprint]:
    """The baseline of this run, saved under the git dir (never in the work tree, never cloned).

    ``keep``: the previous run was killed mid-iteration, so files untracked now may be that iteration's work;
    the baseline its run took at its start still tells the user's files apart. Else a fresh snapshot.
    """
    path = repo.common_dir() / "iteratr" / "untracked" / f"{session}.json"
    if keep:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return {rel: Fingerprint(int(v[0]), int(v[1]), v[2]) for rel, v in raw.items()}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            pass
    prints = snapshot(repo.root, repo.untracked())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({rel: [f.size, f.mtime_ns, f.digest] for rel, f in prints.items()}), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # only needed if this run is killed mid-iteration
    return prints


@dataclass
class Exclusions:
    user_files: list[str] = field(default_factory=list)  # untracked at start and untouched since
    too_big: list[tuple[str, int]] = field(default_factory=list)  # (path, size in bytes)

    @property
    def paths(self) -> list[str]:
        return [*self.user_files, *(p for p, _ in self.too_big)]


def exclusions(root: Path, candidates: list[str], baseline: dict[str, Fingerprint], max_file_size: int) -> Exclusions:
    """Which of ``candidates`` (the files a commit would add: new or changed, relative to ``root``) to leave out.

    ``max_file_size`` 0 means no size limit.
    """
    result = Exclusions()
    for rel in candidates:
        before = baseline.get(rel)
        if before is not None and _same(before, fingerprint(root / rel)):
            result.user_files.append(rel)
            continue
        if max_file_size:
            try:
                size = os.lstat(root / rel).st_size
            except OSError:
                continue
            if size > max_file_size:
                result.too_big.append((rel, size))
    return result


def _same(before: Fingerprint, now: Fingerprint | None) -> bool:
    if now is None:
        return False
    if before.digest is not None and now.digest is not None:
        return before.digest == now.digest
    return (before.size, before.mtime_ns) == (now.size, now.mtime_ns)


def size_words(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
