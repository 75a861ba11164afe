"""The snapshot's history: every note, every iteration that left the live window, the done tasks and the delivered
messages, in append-only files.

Beside the snapshot (where git never goes, ``iteratr.session.store.snapshot_path``) a generation ``G`` of the
archive is a file per kind (``notes.G``, ``iterations.G``, ``tasks.G``, ``messages.G``): each a run of marshalled
lists of rows, appended to when the snapshot is saved. The snapshot records the generation and how many bytes of
each file it covers, so bytes past that (a save that crashed before its snapshot was written) are cut off by the
next save, and a reader holding an older snapshot reads only a prefix that never changes. A full replay starts a
new generation (its name holds the pid and the time), so it never disturbs a reader of the old one; generations
not in use for a while are removed.

An archive begun from a committed checkpoint is partial: it lacks the history before the checkpoint, so reading it
raises ``ArchiveError`` and the store reads that history from the log instead, on demand.

A cache, like the snapshot: nothing is fsynced, and an archive that is missing, short or unreadable makes the
store replay the log instead (``ArchiveError``).
"""

from __future__ import annotations

import contextlib
import io
import marshal
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    Opener = Callable[[str, int], int]  # (file name in the folder, os.open flags) -> fd, never through a link

KINDS = ("notes", "iterations", "tasks", "messages")
_STALE_SECONDS = 600  # a generation untouched this long is no replay's any more


class ArchiveError(ValueError):
    """The archive does not hold what the snapshot says it covers."""


def new_generation() -> str:
    return f"{os.getpid()}-{time.time_ns()}"


class Archive:
    """One generation: ``lengths`` are the bytes of each file the snapshot covers."""

    def __init__(
        self, folder: Path, generation: str, lengths: dict[str, int], opener: Opener, *, partial: bool = False
    ) -> None:
        self.folder = folder
        self.generation = generation
        self.lengths = dict(lengths)
        self._open = opener
        # Begun from a checkpoint (iteratr.session.checkpoint): the history before it was never archived, so a read
        # of all of it is the log's (ArchiveError makes the store replay it); saves still append what follows.
        self.partial = partial

    def _name(self, kind: str) -> str:
        return f"{kind}.{self.generation}"

    def rows(self, kind: str) -> list[tuple[Any, ...]]:
        if self.partial:
            raise ArchiveError("the history before the checkpoint is not archived")
        length = self.lengths.get(kind, 0)
        if not length:
            return []
        try:
            fd = self._open(self._name(kind), os.O_RDONLY)
        except OSError as exc:
            raise ArchiveError(f"archive {self._name(kind)}: {exc}") from None
        with os.fdopen(fd, "rb") as f:
            blob = f.read(length)
        if len(blob) != length:
            raise ArchiveError(f"archive {self._name(kind)} is short")
        found: list[tuple[Any, ...]] = []
        stream = io.BytesIO(blob)
        try:
            while stream.tell() < length:
                chunk = marshal.load(stream)
                if not isinstance(chunk, list):
                    raise ArchiveError("not a list of rows")
                found.extend(chunk)
        except (EOFError, TypeError, ValueError) as exc:  # ValueError: bad marshal data (a corrupted cache)
            raise ArchiveError(f"archive {self._name(kind)}: {exc}") from None
        return found

    def iter_rows(self, kind: str) -> Iterator[Any]:
        """The rows of ``kind`` one saved batch at a time, never all at once (a million-event session's notes are
        hundreds of thousands): for readers that fold or keep the last few. Raises ``ArchiveError`` as ``rows`` does,
        a short file before any row."""
        if self.partial:
            raise ArchiveError("the history before the checkpoint is not archived")
        length = self.lengths.get(kind, 0)
        if not length:
            return
        try:
            fd = self._open(self._name(kind), os.O_RDONLY)
        except OSError as exc:
            raise ArchiveError(f"archive {self._name(kind)}: {exc}") from None
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size < length:
                raise ArchiveError(f"archive {self._name(kind)} is short")
            while f.tell() < length:
                try:
                    chunk = marshal.load(f)
                except (EOFError, TypeError, ValueError) as exc:
                    raise ArchiveError(f"archive {self._name(kind)}: {exc}") from None
                if not isinstance(chunk, list) or f.tell() > length:
                    raise ArchiveError(f"archive {self._name(kind)}: not a list of rows")
                yield from chunk

    def note_rows(self) -> list[tuple[Any, ...]]:
        return self.rows("notes")

    def iteration_rows(self) -> list[tuple[Any, ...]]:
        return self.rows("iterations")

    def task_rows(self) -> list[tuple[Any, ...]]:
        return self.rows("tasks")

    def message_rows(self) -> list[tuple[Any, ...]]:
        return self.rows("messages")

    def append(self, kind: str, rows: list[tuple[Any, ...]]) -> None:
        """Add ``rows`` after the covered bytes (cutting off any left by a save that did not finish)."""
        if not rows:
            return
        length = self.lengths.get(kind, 0)
        fd = self._open(self._name(kind), os.O_RDWR | os.O_CREAT)
        try:
            if os.fstat(fd).st_size < length:
                raise ArchiveError(f"archive {self._name(kind)} lost bytes it covered")
            os.ftruncate(fd, length)
            payload = marshal.dumps(rows)
            if os.pwrite(fd, payload, length) != len(payload):
                raise OSError(f"short write to {self._name(kind)}")
        finally:
            os.close(fd)
        self.lengths[kind] = length + len(payload)

    def remove_stale(self, keep: str) -> None:
        """Generations other than ``keep`` that nothing touched for a while (a replay's that lost the race)."""
        with contextlib.suppress(OSError):
            now = time.time()
            for entry in os.scandir(self.folder):
                kind, _, generation = entry.name.partition(".")
                if kind in KINDS and generation and generation != keep:
                    with contextlib.suppress(OSError):
                        if now - entry.stat(follow_symlinks=False).st_mtime > _STALE_SECONDS:
                            os.unlink(entry.path)
