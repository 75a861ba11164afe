"""The store's snapshot cache: the live state, the log offset it covers, and the archive of its history.

``state.marshal`` (where git never goes: ``iteratr.session.store.snapshot_path``) holds the live part of the
state (``State.pack_live``: tasks, messages, counters, the last notes and iterations), the byte offset, line
count and CRC-32 of the log it covers, the log's inode, size and mtime when it was written, the archive
generation and lengths (``iteratr.session.archive``), and the ``tasks.yaml`` render cache. Its size is the live
state's, not the history's: reading and writing it costs what is live.

A reader whose log has the recorded stat trusts the snapshot at the cost of one ``fstat``. A different stat (a
``touch``, a checkout that wrote the same bytes) makes it check the CRC of the covered bytes: if they still match,
the snapshot holds and the reader saves it again with the new stat, so only the first read pays (a stat-only
change is healed); otherwise the log is replayed from the start.
"""

from __future__ import annotations

import contextlib
import marshal
import os

from iteratr import safe_open
from iteratr.errors import UsageError
from iteratr.fsutil import atomic_write
from iteratr.session.archive import Archive, new_generation
from iteratr.session.replay import Progress
from iteratr.session.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from iteratr.session.state import History

SNAPSHOT_FILE = "state.marshal"
# 10: the log may be segmented: the cover names a segment and its base (iteratr.session.segments)
# 9: the archive may be partial (begun from a committed checkpoint)
# 8: with the sums of the archived iterations; 7: the live state only (history in the archive: notes, old
# iterations, done tasks, delivered messages); 4: everything, iterations with run/progress/usage
VERSION = 10


def log_stat(f: Any) -> tuple[int, int, int]:
    st = os.fstat(f.fileno())
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Snapshot:
    """Reads and writes one session's snapshot and its archive. ``path`` None: no place for one (full replays)."""

    def __init__(self, data_dir: Path, rel: str, path: Path | None, in_data_dir: bool) -> None:
        self.data_dir = data_dir
        self.rel = rel  # under the data dir, when it lives there (outside git)
        self.path = path
        self.in_data_dir = in_data_dir
        self.view: dict[str, bytes] = {}  # the tasks.yaml render cache as last read or written

    # -- the archive's files, opened never through a link ------------------------------------------

    def _open_archive_file(self, name: str, flags: int) -> int:
        assert self.path is not None
        if self.in_data_dir:
            try:
                return safe_open.open_fd(self.data_dir, f"{self.rel.rsplit('/', 1)[0]}/{name}", flags, 0o600)
            except UsageError as exc:
                raise OSError(str(exc)) from None
        if flags & os.O_CREAT:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.path.parent / name, flags | os.O_NOFOLLOW, 0o600)

    def new_archive(self, *, partial: bool = False) -> Archive | None:
        if self.path is None:
            return None
        return Archive(self.path.parent, new_generation(), {}, self._open_archive_file, partial=partial)

    # -- reading ---------------------------------------------------------------------------------------

    def _read_bytes(self) -> bytes:
        if self.path is None:
            raise ValueError("no place for a snapshot")
        if self.in_data_dir:  # outside git: never through a link (a refused one is just no snapshot)
            try:
                return safe_open.read_bytes(self.data_dir, self.rel)
            except UsageError:
                raise ValueError("the snapshot is a link") from None
        return self.path.read_bytes()

    def read(
        self, f: Any, history: Callable[[Archive, int], History], valid: Callable[[Progress, bool], bool]
    ) -> tuple[State, Progress, Archive | None, bool] | None:
        """The cached state, what of the log it covers, its archive, and whether the log's stat changed while its
        bytes did not (a save then heals it); None when there is no snapshot to trust. The state reads its history
        through ``history(archive, offset)``: the store's, which falls back on the log when the archive fails.
        ``valid(cover, same_stat)`` says whether the log still holds what the snapshot covers (the store checks the
        CRC of one segment's covered bytes, unless ``events.jsonl`` has the recorded stat)."""
        try:
            snap = marshal.loads(self._read_bytes())
            if snap["version"] != VERSION:
                raise ValueError("old snapshot")
            offset, crc = snap["offset"], snap["crc"]
            seg, base = snap["segment"]
            done = Progress(offset, snap["lines"], crc, seg, base)
            healed = log_stat(f) != snap["stat"]
            if not valid(done, not healed):  # touched since: are the covered bytes still there?
                raise ValueError("log rewritten since the snapshot")
            generation, lengths, partial = snap["archive"]
            archive = Archive(self.path.parent, generation, lengths, self._open_archive_file, partial=partial)  # type: ignore[union-attr]
            state = State.unpack_live(marshal.loads(snap["state"]), history(archive, offset))
            self.view = snap["view"] if isinstance(snap["view"], dict) else {}
            return state, done, archive, healed
        except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, AttributeError):
            self.view = {}
            return None

    # -- writing ---------------------------------------------------------------------------------------

    def write(self, state: State, done: Progress, archive: Archive | None, f: Any) -> bool:
        """Cache ``state`` as covering the log up to ``done.offset``; its history goes to ``archive`` first. Call
        with the log's lock held. Returns whether the state's history up to ``done`` left memory for the archive."""
        if self.path is None or archive is None:
            return False
        try:
            save_history(state, archive)
        except (OSError, ValueError):
            return False  # no snapshot rather than one whose archive lacks rows: the next reader replays
        snap = {
            "version": VERSION,
            "offset": done.offset,
            "lines": done.lines,
            "crc": done.crc,
            "segment": (done.seg, done.base),
            "stat": log_stat(f),
            "state": marshal.dumps(state.pack_live()),
            "archive": (archive.generation, archive.lengths, archive.partial),
            "view": self.view,
        }
        # A cache: losing it costs a replay, so not durable; the rename keeps readers from seeing half a file.
        with contextlib.suppress(OSError, UsageError):
            if self.in_data_dir:
                safe_open.atomic_write(self.data_dir, self.rel, marshal.dumps(snap), durable=False)
            else:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(self.path, marshal.dumps(snap), mode=0o600, durable=False)
            archive.remove_stale(keep=archive.generation)
        return True

    def forget(self) -> None:
        """Remove the snapshot (the next read replays, from the checkpoint or the start)."""
        if self.path is None:
            return
        with contextlib.suppress(OSError, UsageError):
            if self.in_data_dir:
                fd = safe_open.open_parent(self.data_dir, self.rel)
                try:
                    os.unlink(self.rel.rsplit("/", 1)[-1], dir_fd=fd)
                finally:
                    os.close(fd)
            else:
                self.path.unlink()
        self.view = {}

    def adopt(self, archive: Archive, offset: int, f: Any) -> None:
        """A whole archive rebuilt up to ``offset`` replaces the snapshot's partial one, if the snapshot still covers
        exactly that much (else a newer one was saved meanwhile: it stays, and its reader rebuilds). Takes the log's
        lock if free; never waits for it."""
        if self.path is None:
            return
        import fcntl

        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return
        try:
            snap = marshal.loads(self._read_bytes())
            if snap["version"] != VERSION or snap["offset"] != offset or not snap["archive"][2]:
                return
            snap["archive"] = (archive.generation, archive.lengths, False)
            if self.in_data_dir:
                safe_open.atomic_write(self.data_dir, self.rel, marshal.dumps(snap), durable=False)
            else:
                atomic_write(self.path, marshal.dumps(snap), mode=0o600, durable=False)
        except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, UsageError):
            return
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def save_history(state: State, archive: Archive) -> None:
    """Move what the state holds of history (new notes, iterations leaving the window) into the archive."""
    rows = state.history_delta()
    for kind, found in rows.items():
        archive.append(kind, found)
    state.history_saved(rows)
