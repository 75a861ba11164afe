"""The store's journal: a digest of every line iteratr's store wrote to a session log, kept where git never goes.

An agent with a shell can append a well-formed event to ``events.jsonl`` by hand (``echo '{..."task.status"...
"completed"...}' >> events.jsonl``) and so forge a completion. The store writes, under the log's lock and
before the lines themselves, the digest of each line it appends (the first 16 hex digits of its SHA-256)
to ``journal`` beside the snapshot, under the git common dir (``store.snapshot_path``). At a turn's end
(``iteratr.run.integrity``) an appended line counts as written through ``iteratr tool`` only if its digest
is here, once per time it was written. A crash between the journal's write and the log's leaves a digest
with no line: harmless.

When the recorder stages the log for a commit (under the lock) the journal is sealed: its digests move to
``journal.staged``, which is removed once the commit is made. A write that lands after the staging goes
to a fresh ``journal``, and a failed commit leaves ``journal.staged`` in place, so no line of the log
since iteratr's last commit ever loses its digest.

Outside git (no git dir above the data dir) there is no place the repository cannot plant, so there is no
journal and the turn's appended valid events are taken as before. Limits: an agent that edits this file
under ``.git`` on purpose can still forge a line.

Standard library only (CPython's SHA-256, imported lazily): ``iteratr tool`` writes through here.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from typing import Any

JOURNAL_FILE = "journal"
STAGED_FILE = "journal.staged"


def digest(line: bytes) -> bytes:
    """The journal's entry for one exact log line (with its newline): SHA-256, so no line can be made to match."""
    return _sha256_hex(line)[:16].encode()


_SHA256: list[Any] = []  # found once: a failed import searches sys.path again on every call (0.15 ms each)


def _sha256_hex(data: bytes) -> str:
    # hashlib loads OpenSSL (about 3 ms of a 45 ms tool call); CPython's own SHA-256 module gives the same digest.
    if not _SHA256:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.12+
        except ImportError:
            try:
                from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # Python 3.11
            except ImportError:
                from hashlib import sha256  # type: ignore[assignment,unused-ignore]
        _SHA256.append(sha256)
    hexdigest: str = _SHA256[0](data).hexdigest()
    return hexdigest


def record(path: Path, lines: list[bytes]) -> None:
    """Append the digests of ``lines``, durably, before the lines themselves are written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        payload = b"".join(digest(line) + b"\n" for line in lines)
        if os.write(fd, payload) != len(payload):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def digests(path: Path) -> dict[bytes, int]:
    """How many times each digest was recorded since iteratr's last commit (the staged part included)."""
    counts: dict[bytes, int] = {}
    for name in (STAGED_FILE, JOURNAL_FILE):
        try:
            blob = (path.parent / name).read_bytes()
        except OSError:
            continue
        for entry in blob.split():
            counts[entry] = counts.get(entry, 0) + 1
    return counts


def seal(path: Path) -> None:
    """The log was staged for a commit (call under the log's lock): what the journal vouches for moves aside."""
    try:
        blob = path.read_bytes()
    except OSError:
        return
    if blob:
        with open(path.parent / STAGED_FILE, "ab") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        with open(path, "r+b") as f:
            f.truncate(0)


def committed(path: Path) -> None:
    """The staged log is committed: its digests are no longer needed."""
    with contextlib.suppress(OSError):
        (path.parent / STAGED_FILE).unlink()
