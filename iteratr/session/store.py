"""The session store: an append-only JSONL event log, its lock, and a snapshot cache.

Files of a session S under the data dir (default ``.iteratr``)::

    S/events.jsonl     the source of truth, committed on branch iteratr/S
    S/tasks.yaml       a readable view: counts, open tasks, last notes; rewritten after every change (tasks_view)

and, where git never carries it, ``<git-common-dir>/iteratr/cache/<crc of the data dir>/S/state.marshal``:
a snapshot of the live state, with its archive of history beside it (always rebuildable). A repository can
commit any file under the data dir, and a committed snapshot made to match the committed log's bytes would be
believed; git never clones its own directory. Outside git (no ``.git`` above the data dir) the snapshot stays
in ``S/cache/``.

Every file under the data dir is opened through ``iteratr.safe_open``: a symlink (a committed
``events.jsonl -> ~/.bashrc``) is refused with exit 2 naming it, never read, written or truncated through.

The event format (one JSON object per line) and how a line is made and parsed: ``iteratr.session.events``.

Ids (``TAS-n``, ``NOT-n``, ``MSG-n``) are assigned under the lock from the replayed state and are
never reused. Every append is one ``write`` of whole lines, then ``fsync``, under an exclusive
``flock`` on the log itself, so concurrent writers (the agent, its subagents, the user, a hook)
never interleave, lose an event, or hand out the same id.

A crash mid-write can leave a torn last line (no trailing newline). Readers skip it with a warning;
the next writer truncates it away before appending. A bad line anywhere else is reported with its
line number, never a traceback.

Replaying 100,000 events on every ``iteratr tool`` call would be slow, so the live part of the replayed state is
cached in a snapshot, with its history in an archive beside it (``iteratr.session.snapshot``,
``iteratr.session.archive``): a call costs what is live. Snapshots are written only under the lock and only for
the log as it is then, so while nothing but iteratr touches the log a reader trusts the snapshot at the cost of
one ``fstat``, and applies only the lines after the offset it covers. A log whose covered bytes changed is
replayed from the start, streamed line by line in bounded memory (``iteratr.session.replay``). Either way the
state equals a full replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from iteratr import paths, safe_open
from iteratr.errors import StoreError, UsageError
from iteratr.session import checkpoint, journal, segmented_read, segments
from iteratr.session.archive import Archive
from iteratr.session.derived import VIEW_NEUTRAL, DerivedFiles
from iteratr.session.recovering import Recovering as _Recovering
from iteratr.session.reducer import apply
from iteratr.session.replay import Progress, crc_of
from iteratr.session.snapshot import SNAPSHOT_FILE, Snapshot, log_stat, save_history
from iteratr.session.state import Event, State
from iteratr.session.store_files import after_last_newline, snapshot_path, write_data_gitignore

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from typing import Any

__all__ = ["SNAPSHOT_FILE", "Store", "snapshot_path", "write_data_gitignore"]


class Store(DerivedFiles):
    """One session's event log. Cheap to construct; touches the disk only when asked."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.name = paths.validate_session_name(name)
        self.data_dir = data_dir
        self.dir = data_dir / name
        self.events_path = self.dir / paths.EVENTS_FILE
        self.tasks_path = self.dir / paths.TASKS_FILE
        # Paths under the data dir, for safe_open (which walks them without following a link).
        self._events_rel = f"{name}/{paths.EVENTS_FILE}"
        self._tasks_rel = f"{name}/{paths.TASKS_FILE}"
        self.checkpoint_path = self.dir / checkpoint.CHECKPOINT_FILE
        self._checkpoint_rel = f"{name}/{checkpoint.CHECKPOINT_FILE}"
        # None: a .git that cannot be read, so no place git never carries; no snapshot then (a full replay).
        found = snapshot_path(data_dir, name)
        rel = f"{name}/{paths.CACHE_DIR}/{SNAPSHOT_FILE}"
        in_data_dir = found == Path(os.path.abspath(data_dir)) / rel
        self._snapshot = Snapshot(data_dir, rel, found, in_data_dir)
        # Digests of the lines this store writes, beside the snapshot where git never goes (iteratr.session.journal);
        # None outside git (or with an unreadable .git): no place the repository cannot plant one.
        self.journal_path = None if found is None or in_data_dir else found.with_name(journal.JOURNAL_FILE)
        # What the state last loaded covers, and the archive holding its history.
        self._done = Progress(0, 0, 0)
        self._n_closed = 0  # closed segments when the state was last loaded
        self._archive: Archive | None = None
        # The exact lines this process appended (the loop's own events), until the recorder checks the log:
        # lines of loop-only types among them are iteratr's, not an agent's forgery (iteratr.run.integrity).
        self.own_lines: list[bytes] = []
        self._view_bytes: bytes | None = None  # tasks.yaml as this store last wrote it
        self._view_at: tuple[int, int] | None = None  # the log (closed segments, bytes) it was rendered for
        self._last: tuple[State, tuple[int, int, int], int] | None = None  # its last append's state, the log's stat
        self._checkpoint_lines: int | None = None  # the lines of the checkpoint last found sealed, or written

    def exists(self) -> bool:
        # lexists: a dangling link must reach the open, which refuses it by name, not look like no session
        return os.path.lexists(self.events_path)

    def require(self) -> None:
        """Raise a usage error naming the sessions that do exist, for reads of an unknown session."""
        if self.exists():
            return
        found = ", ".join(sorted(p.parent.name for p in self.data_dir.glob(f"*/{paths.EVENTS_FILE}")))
        raise UsageError(
            f"no session {self.name!r} in {self.data_dir}; "
            + (f"sessions there: {found}" if found else "none exists yet (iteratr build creates one)")
        )

    def create(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        write_data_gitignore(self.data_dir)
        if not self.exists():
            os.close(safe_open.open_fd(self.data_dir, self._events_rel, os.O_WRONLY | os.O_CREAT, 0o644))
            self.write_view(State())

    # -- reading -----------------------------------------------------------------------------------

    def load(self) -> State:
        """The current state, from the snapshot plus any newer lines (no lock: appends are atomic lines)."""
        self.require()
        with safe_open.open_read(self.data_dir, self._events_rel) as f:
            return self._load_from(f, save_snapshot=True)

    def fresh(self, held: State | None) -> State:
        """``load``, unless ``held`` is the state this store's last append returned and the log is as that append
        left it (the same file, size and mtime, no segment closed since): the loop's one read of an iteration costs
        a stat when nobody else wrote meanwhile."""
        last = self._last
        if last is not None and held is last[0]:
            try:
                st = os.stat(self.events_path, follow_symlinks=False)
            except OSError:
                return self.load()
            if (st.st_ino, st.st_size, st.st_mtime_ns) == last[1] and segments.count(self.dir) == last[2]:
                return held
        return self.load()

    def _load_from(self, f: Any, *, save_snapshot: bool) -> State:
        n_closed = segments.count(self.dir)
        # ``f`` opened just before a close made it the last closed segment: it holds nothing after them.
        open_f = segmented_read.Empty() if n_closed and self._is_segment(f, n_closed - 1) else f
        self._n_closed = n_closed

        def valid(done: Progress, same_stat: bool) -> bool:
            """The state covering ``done`` still matches the log: only the bytes of ONE segment are checked."""
            if done.seg > n_closed or done.local < 0:
                return False
            try:
                if done.seg == n_closed:
                    return same_stat or crc_of(open_f, done.local) == done.crc
                with self.open_segment(done.seg) as g:
                    return crc_of(g, done.local) == done.crc
            except (OSError, UsageError):
                return False

        found = self._snapshot.read(f, lambda archive, offset: _Recovering(archive, self, offset), valid)
        if found is not None:
            state, done, archive, healed = found
        else:  # the committed checkpoint and the lines after it, else a full replay in bounded memory
            healed = False
            archive = self._snapshot.new_archive(partial=True)
            recovering = _Recovering(archive, self, 0) if archive is not None else None
            begun = (
                checkpoint.load(self.data_dir, self._checkpoint_rel, lambda done: valid(done, False), recovering)
                if recovering
                else None
            )
            if begun is not None:
                state, done = begun
                recovering.offset = done.offset  # type: ignore[union-attr]
            else:  # history goes to a new (whole) archive as it is replayed
                if archive is not None:
                    archive.partial = False
                state, done = State(recovering), Progress(0, 0, 0)
        spill = None
        # Set before the replay: a partial archive rebuilt whole meanwhile (iteratr.session.recovering) replaces it.
        self._archive = archive
        if archive is not None and found is None:

            def spill(progress: Progress) -> None:
                with contextlib.suppress(OSError, ValueError):
                    save_history(state, self._archive)  # type: ignore[arg-type]
                    recovering.offset = progress.offset  # type: ignore[union-attr]

        seg_before = done.seg
        applied = segmented_read.advance(self, state, done, open_f, n_closed, spill)
        self._done = done
        if (applied or healed or done.seg != seg_before) and save_snapshot and open_f is f:
            self._save_snapshot_if_current(state, f)
        return state

    def open_segment(self, n: int) -> Any:
        """Closed segment ``n`` for reading, never through a link in the data dir."""
        return safe_open.open_read(self.data_dir, f"{self.name}/{segments.segment_rel(n)}")

    def _open_path(self, path: Path) -> Any:
        return safe_open.open_read(self.data_dir, Path(path).relative_to(self.data_dir).as_posix())

    def view(self) -> segments.LogView:
        """The whole log (closed segments, then ``events.jsonl``) as one file to read; a link is refused."""
        return segments.LogView(self.dir, opener=self._open_path)

    def _is_segment(self, f: Any, n: int) -> bool:
        try:
            a = os.fstat(f.fileno())
            b = os.stat(self.dir / segments.segment_rel(n), follow_symlinks=False)
        except OSError:
            return False
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)

    def iter_events(self) -> Iterator[Event]:
        """Every event in the log, in order, one line at a time (memory stays bounded)."""
        self.require()
        safe_open.refuse_link(self.data_dir, self._events_rel)
        return segmented_read.events(self.view(), self.events_path)

    def events(self) -> list[Event]:
        """Every event in the log, in order (for tests and small logs: ``iter_events`` streams)."""
        return list(self.iter_events())

    def _save_snapshot_if_current(self, state: State, f: Any) -> None:
        """A reader caches what it replayed, unless a writer holds the lock or the log grew meanwhile."""
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a writer is at work; it writes a newer snapshot itself
        try:
            done = self._done
            if done.seg == self._n_closed and os.fstat(f.fileno()).st_size == done.end - done.base:
                self._write_snapshot(state, done, f)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

    def _write_snapshot(self, state: State, done: Progress, f: Any) -> None:
        saved = self._snapshot.write(state, done, self._archive, f)
        if saved and isinstance(
            state._archive, _Recovering
        ):  # its history up to here is archived (or, if partial, the log's)
            state._archive.offset = done.offset

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        self.create()
        while True:
            f = os.fdopen(safe_open.open_fd(self.data_dir, self._events_rel, os.O_RDWR), "r+b")
            fcntl.flock(f, fcntl.LOCK_EX)
            # A close (``segments.close``) replaced events.jsonl while this waited: the lock held is the old file's,
            # now a closed segment; appending there would be lost. Lock the new one. A close cut short by a crash
            # is finished first (the file is then the last closed segment).
            try:
                now = os.stat(self.events_path, follow_symlinks=False)
                st = os.fstat(f.fileno())
                moved = (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev)
            except FileNotFoundError:
                moved = False
            if not moved and not segments.finish_close(self.dir):
                break
            f.close()  # releases the lock
        with f:
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def transact(self, decide: Callable[[State], list[Event]]) -> tuple[State, list[Event]]:
        """Under the lock: load state, let ``decide`` validate and return new events, append them durably.

        ``decide`` raises (e.g. ``UsageError``) to refuse; then nothing is written.
        """
        if not self.exists() and not decide(State()):
            return State(), []  # a refusal or a no-op must not create the session (decide raised or said so)
        with self._locked() as f:
            size = os.fstat(f.fileno()).st_size
            state = self._load_from(f, save_snapshot=False)
            new = decide(state)
            if not new:
                return state, []
            # The view is rendered after the event is durable, and its write refuses a link; refuse before the
            # append, so a refused command leaves the log as it was (the session dir was just walked, above).
            safe_open.refuse_link(self.data_dir, self._tasks_rel)
            self._repair_torn_tail(f, size)
            import json

            lines = [json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in new]
            payload = b"".join(lines)
            start = f.seek(0, os.SEEK_END)
            try:
                if self.journal_path is not None:  # first the digests: a line without one counts as written by hand
                    journal.record(self.journal_path, lines)
                # One write of whole lines: a reader never sees half an event, except after a crash mid-write.
                written = os.write(f.fileno(), payload)
                if written != len(payload):
                    raise OSError(f"short write ({written} of {len(payload)} bytes)")
                os.fsync(f.fileno())
            except OSError as exc:
                # Disk full or similar: take back the partial line so the log stays whole, and say so.
                with contextlib.suppress(OSError):
                    os.ftruncate(f.fileno(), start)
                raise StoreError(f"cannot append to {self.events_path}: {exc.strerror or exc}") from None
            self.own_lines.extend(lines)
            for event in new:
                apply(state, event)
            try:
                # Skipped only if this store rendered the view for the log exactly as it was before this append:
                # another writer's append since (whose render may not have happened: killed, disk full) renders it.
                fresh = self._view_at == (self._n_closed, start) and self._view_intact()
                if not (fresh and all(e.get("type") in VIEW_NEUTRAL for e in new)):
                    self.write_view(state)
                self._view_at = (self._n_closed, start + len(payload))
            except OSError as exc:
                # The event is durable: say so, not "unexpected OSError". The view is derived; the next write
                # (or a run's recovery) renders it again, and a temp file of this one is never left behind.
                raise StoreError(
                    f"recorded in {self.events_path}, but {self.tasks_path} could not be rewritten: "
                    f"{exc.strerror or exc}; the next write renders it again"
                ) from None
            done = self._done
            self._last = None
            # Else the log held bytes the state does not cover: no snapshot of it.
            if done.seg == self._n_closed and start == done.local:
                done.offset = done.end = done.base + start + len(payload)
                done.lines += len(new)
                done.crc = zlib.crc32(payload, done.crc)
                self._write_snapshot(state, done, f)
                self._last = (state, log_stat(f), self._n_closed)
            return state, new

    def append(self, *events: Event) -> State:
        """Append events that need no validation against state (loop bookkeeping)."""
        return self.transact(lambda _state: list(events))[0]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's lock: no ``iteratr tool`` write lands meanwhile, so the log and ``tasks.yaml`` agree
        (the recorder stages both for a commit under it)."""
        with self._locked():
            yield

    def close_segment(self, min_bytes: int = 0) -> Path | None:
        """Inside ``locked()``, before the recorder stages the log: ``events.jsonl`` becomes the next closed segment
        (never rewritten again) when it holds at least ``min_bytes`` (and at least one whole line, and no torn
        tail: the next write repairs that first). Returns the new segment's path, or None."""
        safe_open.refuse_link(self.data_dir, self._events_rel)
        try:
            with safe_open.open_read(self.data_dir, self._events_rel) as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0 or size < min_bytes:
                    return None
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    return None
        except FileNotFoundError:
            return None
        n = segments.close(self.dir)
        return None if n is None else self.dir / segments.segment_rel(n)

    def forget_snapshot(self) -> None:
        """The closed segments were put back (``iteratr.run.history``): a snapshot read from them meanwhile is not
        believed again."""
        self._last = None  # what the loop holds is no longer the log
        self._snapshot.forget()

    def rewrite(self, data: bytes) -> State:
        """Replace the log's bytes (a tampered log put back, iteratr.run.history), in place under the lock, so a
        writer waiting on the lock appends to the restored log; then re-render ``tasks.yaml`` from it."""
        self._last = None  # what the loop holds is no longer the log
        with self._locked() as f:
            f.seek(0)
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            self._snapshot.view = {}
            state = self._load_from(f, save_snapshot=False)
            self.write_view(state)
            return state

    def repair(self) -> State:
        """Before recovery commits what a crash left: a torn last line removed, ``tasks.yaml`` rendered afresh."""
        self._last = None  # what the loop holds is no longer the log
        with self._locked() as f:
            self._repair_torn_tail(f, os.fstat(f.fileno()).st_size)
            state = self._load_from(f, save_snapshot=False)
            self.write_view(state)
            return state

    def _repair_torn_tail(self, f: Any, size: int) -> None:
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep = after_last_newline(f, size)
        print(
            f"iteratr: warning: {self.events_path}: removing a torn last line ({size - keep} bytes) before appending",
            file=sys.stderr,
        )
        os.ftruncate(f.fileno(), keep)
