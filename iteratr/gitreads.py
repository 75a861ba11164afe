"""The build loop's quick reads of the repository, part of the one git client (``iteratr.gitrepo``).

Every iteration reads the same few things at its end: where HEAD and iteratr's record are, the log iteratr last
committed, and what changed in the work tree. Each git process costs about a millisecond to start before it does
anything, so these are read in as few processes as git allows (``git cat-file --batch-check`` for refs and a file's
id at once, one ``git status``), started together so they overlap (``GitRepo.start``), and HEAD's branch is read
from its file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iteratr.gitrepo import GitRepo, GitRunning

# Every git iteratr runs: messages in English (the error lines it shows read the same everywhere), and the objects
# as they are, never as ``git replace`` (an agent's) says they are: a replaced commit would show any log as committed.
GIT_ENV = {"LANGUAGE": "C", "LC_ALL": "C", "GIT_NO_REPLACE_OBJECTS": "1"}

READY_TIMEOUT = 30.0  # seconds: a prepared ``cat-file`` answers in milliseconds once asked

STATUS = ("--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=all")


class TreeStatus:
    """What ``status`` found (a plain class: the tool path imports this module, never ``dataclasses``)."""

    def __init__(self, head: str | None, changed: list[str], untracked: list[str]) -> None:
        self.head = head  # None before the first commit
        self.changed = changed  # tracked paths whose index or work-tree content differs from HEAD
        self.untracked = untracked
        self.entries: list[tuple[str, str, str, str]] = []  # as ``entries`` gives them


def start_status(repo: GitRepo) -> GitRunning:
    """``status`` started now, read later. It takes no lock (``--no-optional-locks``): other git commands meanwhile,
    which need the index's lock, never find it held."""
    return repo.start(*STATUS, "--branch")


def status(repo: GitRepo, started: GitRunning | None = None) -> TreeStatus:
    """One ``git status`` of the whole work tree (or the one ``start_status`` started): HEAD's sha, the tracked
    paths that differ from it (staged or not), and the untracked, not ignored files (relative to the top)."""
    found = TreeStatus(None, [], [])
    found.entries = list(entries((started or start_status(repo)).out()))
    for kind, _, path, _ in found.entries:
        if kind == "#" and path.startswith("branch.oid "):
            oid = path.removeprefix("branch.oid ")
            found.head = None if oid == "(initial)" else oid
        elif kind == "?":
            found.untracked.append(path)
        elif kind in ("1", "2", "u"):
            found.changed.append(path)
    return found


def entries(out: str) -> Iterator[tuple[str, str, str, str]]:
    """``git status --porcelain=v2 -z`` output as (kind, XY, path, original path of a rename or copy). Kinds: ``#`` a
    header (its text as the path), ``1`` changed, ``2`` renamed or copied, ``u`` unmerged, ``?`` untracked, ``!``
    ignored. The path follows 8, 9 or 10 fields; a rename's original is the next NUL-separated field."""
    fields = iter(out.split("\0"))
    for entry in fields:
        kind = entry[:1]
        if kind in ("#", "?", "!"):
            yield kind, "", entry[2:], ""
        elif kind in ("1", "2", "u"):
            path = entry.split(" ", {"1": 8, "2": 9, "u": 10}[kind])[-1]
            yield kind, entry[2:4], path, next(fields, "") if kind == "2" else ""


def head_ref(repo: GitRepo) -> str | None:
    """The ref this work tree's HEAD is attached to, from its HEAD file (no git started); None when detached, or
    when the file says nothing plain (a reftable repository keeps HEAD elsewhere: ask git then)."""
    try:
        with open(os.path.join(repo.repo.git_dir, "HEAD"), "rb") as f:
            text = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    ref = text.removeprefix("ref: ").strip() if text.startswith("ref: ") else None
    return None if ref is None or ref.endswith("/.invalid") else ref


def loose_head(repo: GitRepo) -> str | None:
    """The commit HEAD's branch points at, from its ref file: ``git commit`` has just written it there (a ref store
    that keeps no such file, reftable, answers None: ask git)."""
    ref = head_ref(repo)
    if ref is None or not ref.startswith("refs/heads/"):
        return None
    try:
        with open(os.path.join(repo.repo.common_dir, *ref.split("/")), "rb") as f:
            sha = f.read(100).decode("ascii", "replace").strip()
    except OSError:
        return None
    return sha if len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha) else None


def ready_objects(repo: GitRepo) -> GitRunning:
    """A ``git cat-file --batch-check`` started ahead, waiting for its names (``start_objects``): git resolves each
    name as it reads it, so one started before the agent's turn answers for the repository as the turn left it."""
    # It lives through the agent's turn, which could stop it (SIGSTOP): never waited on for long, the check then
    # reads through a git of its own.
    return repo.start("cat-file", "--batch-check", hold=True, timeout=READY_TIMEOUT)


def start_objects(repo: GitRepo, *names: str, ready: GitRunning | None = None) -> GitRunning:
    """``git cat-file --batch-check`` for ``names`` (a ref, or ``rev:path``), given to ``ready`` if it is still
    there, else to one started now: read it with ``objects``. Ids and sizes only: a blob is never read whole here
    (a session's first run finds its whole old log committed as events.jsonl)."""
    data = "".join(f"{name}\n" for name in names).encode()
    if ready is not None:
        if ready.send(data):
            return ready
        ready.completed()  # it ended before it was asked (stopped by someone): reaped, and another started
    return repo.start("cat-file", "--batch-check", input=data)


def objects(started: GitRunning) -> list[tuple[str, int] | None]:
    """What ``start_objects`` found, in the order asked: (id, size) of each, None for a missing one."""
    found: list[tuple[str, int] | None] = []
    for line in started.out().splitlines():
        fields = line.split(" ")
        found.append((fields[0], int(fields[2])) if len(fields) == 3 and fields[2].isdigit() else None)
    return found


def blob_id(data: bytes, like: str) -> str:
    """The id git gives a blob of ``data``, in the object format of the id ``like`` (SHA-1, or SHA-256)."""
    import hashlib

    digest = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(data) + data).hexdigest()
