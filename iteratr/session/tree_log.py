"""A session's whole log as a commit holds it: its closed segments in number order, then its ``events.jsonl``
(``iteratr.session.segments``). For readers that take the log from git rather than a work tree: ``iteratr tool``'s
fallback to the session's branch (``iteratr.branch_log``), and tests. Two git processes, whatever the number of
segments: ``ls-tree`` of the session's directory, then one ``cat-file --batch`` for every blob.

Standard library only (the tool path reads through here).
"""

from __future__ import annotations

import os
import subprocess

from iteratr.gitreads import GIT_ENV
from iteratr.session import segments

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def _git(root: Path, *args: str, feed: bytes | None = None) -> bytes | None:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=root, env=env, input=feed, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def blobs(root: Path, ref: str, session_rel: str) -> list[str] | None:
    """The blob ids of the log at ``ref``, in order; None when ``ref`` holds no ``events.jsonl`` for the session.
    Only regular files named as segments count (a committed link is never followed)."""
    listed = _git(
        root,
        "ls-tree",
        "-r",
        "-z",
        ref,
        "--",
        f"{session_rel}/{segments.OPEN_FILE}",
        f"{session_rel}/{segments.SEGMENTS_DIR}/",
    )
    if listed is None:
        return None
    found: list[tuple[int, str]] = []
    open_blob = None
    for entry in listed.split(b"\0"):
        head, _, raw = entry.partition(b"\t")
        fields = head.split()
        if len(fields) != 3 or fields[1] != b"blob" or fields[0] not in (b"100644", b"100755"):
            continue
        inside = os.fsdecode(raw)[len(session_rel) + 1 :]
        if inside == segments.OPEN_FILE:
            open_blob = fields[2].decode()
            continue
        stem = inside.rsplit("/", 1)[-1].removesuffix(".jsonl")
        if stem.isdigit() and stem.isascii() and segments.segment_rel(int(stem)) == inside:
            found.append((int(stem), fields[2].decode()))
    if open_blob is None:
        return None
    return [oid for _, oid in sorted(found)] + [open_blob]


def read(root: Path, ref: str, session_rel: str) -> bytes | None:
    """The log's bytes at ``ref`` (see ``blobs``); None when there is none."""
    oids = blobs(root, ref, session_rel)
    if oids is None:
        return None
    out = _git(root, "cat-file", "--batch", feed="".join(f"{oid}\n" for oid in oids).encode())
    if out is None:
        return None
    parts, pos = [], 0
    for _ in oids:  # "<oid> blob <size>\n<bytes>\n" each
        eol = out.index(b"\n", pos)
        size = int(out[pos:eol].split()[2])
        parts.append(out[eol + 1 : eol + 1 + size])
        pos = eol + 1 + size + 1
    return b"".join(parts)
