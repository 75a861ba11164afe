"""The session store: an append-only JSONL event log, its lock, and a snapshot cache.

Files of a session S under the data dir (default ``.iteratr``)::

    S/events.jsonl     the source of truth, committed on branch iteratr/S
    S/tasks.yaml       a readable view of tasks and notes, rewritten after every change (iteratr.tasks_view)

and, where git never carries it, ``<git-common-dir>/iteratr/cache/<crc of the data dir>/S/state.marshal``:
a snapshot of the replayed state (always rebuildable). A repository can commit any file under the data dir,
and a committed snapshot made to match the committed log's bytes would be believed; git never clones its
own directory. Outside git (no ``.git`` above the data dir) the snapshot stays in ``S/cache/``.

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

Replaying 100,000 events on every ``iteratr tool`` call would be slow, so the replayed state is
cached in ``cache/state.marshal`` with the byte offset it covers, the CRC-32 of the log up to that
offset, and the log's inode, size and mtime when the snapshot was written. Snapshots are written
only under the lock and only for the log as it is then, so while nothing but iteratr touches the
log, a reader finds that stat unchanged and trusts the snapshot at the cost of one ``fstat``. When
the stat differs (an append whose snapshot was lost, a ``git checkout``, an edit), the reader checks
the CRC of the covered bytes: if they are unchanged it applies only the lines after the offset,
otherwise it replays the whole log. Either way the state equals a full replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from iteratr import paths, safe_open
from iteratr.errors import StoreError, UsageError
from iteratr.fsutil import atomic_write
from iteratr.session import journal
from iteratr.session.events import parse_lines
from iteratr.session.reducer import apply
from iteratr.session.state import Event, State

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from typing import Any

SNAPSHOT_FILE = "state.marshal"
_SNAPSHOT_VERSION = 4  # 4: State.claimed replaced the stored `complete`; iterations carry run, progress, usage
_LISTS = 4  # the leading lists of State.pack(), each marshalled on its own in the snapshot


class Store:
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
        # None: a .git that cannot be read, so no place git never carries; no snapshot then (a full replay).
        self._snapshot_path = snapshot_path(data_dir, name)
        self._snapshot_rel = f"{name}/{paths.CACHE_DIR}/{SNAPSHOT_FILE}"
        self._snapshot_in_data_dir = self._snapshot_path == Path(os.path.abspath(data_dir)) / self._snapshot_rel
        # Digests of the lines this store writes, beside the snapshot where git never goes (iteratr.session.journal);
        # None outside git (or with an unreadable .git): no place the repository cannot plant one.
        self.journal_path = (
            None
            if self._snapshot_path is None or self._snapshot_in_data_dir
            else self._snapshot_path.with_name(journal.JOURNAL_FILE)
        )
        # The tasks.yaml cache (see iteratr.tasks_view.render), one marshalled entry per part of the file:
        # reads never decode it, and a write re-encodes only the parts that changed.
        self._view_blobs: dict[str, bytes] = {}
        # Lists of the state as unpacked from the snapshot, with their marshalled bytes: a list that
        # comes back from State.pack() as the very same object is unchanged and is not encoded again.
        self._state_blobs: list[tuple[Any, bytes]] = []
        # What the state last loaded covers: lines and bytes of the log, their CRC-32, and the file's end then.
        self._lines = 0
        self._offset = 0
        self._crc = 0
        self._end = 0
        # The exact lines this process appended (the loop's own events), until the recorder checks the log:
        # lines of loop-only types among them are iteratr's, not an agent's forgery (iteratr.run.integrity).
        self.own_lines: list[bytes] = []

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

    def _load_from(self, f: Any, *, save_snapshot: bool) -> State:
        state, offset, first_line, crc = self._read_snapshot(f)
        f.seek(offset)
        blob = f.read()
        events, consumed = parse_lines(blob, first_line, self.events_path)
        for event in events:
            apply(state, event)
        done = memoryview(blob)[:consumed]
        self._lines = first_line - 1 + blob.count(b"\n", 0, consumed)
        self._offset = offset + consumed
        self._crc = zlib.crc32(done, crc)
        self._end = offset + len(blob)
        if events and save_snapshot:
            self._save_snapshot_if_current(state, f)
        return state

    def events(self) -> list[Event]:
        """Every event in the log, in order (for status, history and tests)."""
        self.require()
        return parse_lines(safe_open.read_bytes(self.data_dir, self._events_rel), 1, self.events_path)[0]

    @staticmethod
    def _stat(f: Any) -> tuple[int, int, int]:
        st = os.fstat(f.fileno())
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read_snapshot(self, f: Any) -> tuple[State, int, int, int]:
        """The cached state, the log offset and line number it covers, and the CRC-32 of the log up to there."""
        try:
            snap = marshal.loads(self._read_snapshot_bytes())
            if snap["version"] != _SNAPSHOT_VERSION:
                raise ValueError("old snapshot")
            offset, crc = snap["offset"], snap["crc"]
            if self._stat(f) != snap["stat"]:
                # Touched by something other than iteratr's own writes since: are the covered bytes still there?
                f.seek(0)
                covered = f.read(offset)
                if len(covered) != offset or zlib.crc32(covered) != crc:
                    raise ValueError("log rewritten since the snapshot")
            blobs = snap["state"]
            rows = [marshal.loads(blob) for blob in blobs[:_LISTS]]
            state = State.unpack([*rows, *marshal.loads(blobs[_LISTS])])
            self._state_blobs = list(zip(rows, blobs[:_LISTS], strict=True))
            self._view_blobs = snap["view"] if isinstance(snap["view"], dict) else {}
            return state, offset, snap["lines"] + 1, crc
        except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError):
            self._view_blobs, self._state_blobs = {}, []
            return State(), 0, 1, 0

    def _save_snapshot_if_current(self, state: State, f: Any) -> None:
        """A reader caches what it replayed, unless a writer holds the lock or the log grew meanwhile."""
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a writer is at work; it writes a newer snapshot itself
        try:
            if os.fstat(f.fileno()).st_size == self._end:
                self._write_snapshot(state, f)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

    def _write_snapshot(self, state: State, f: Any) -> None:
        """Cache ``state`` as covering the log up to ``self._offset``. Call with the lock held."""
        snap = {
            "version": _SNAPSHOT_VERSION,
            "offset": self._offset,
            "lines": self._lines,
            "crc": self._crc,
            "stat": self._stat(f),
            "state": self._pack(state),
            "view": self._view_blobs,
        }
        # A cache: losing it costs a replay, so not durable; the rename keeps readers from seeing half a file.
        with contextlib.suppress(OSError, UsageError):
            if self._snapshot_in_data_dir:
                safe_open.atomic_write(self.data_dir, self._snapshot_rel, marshal.dumps(snap), durable=False)
            elif self._snapshot_path is not None:
                self._snapshot_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(self._snapshot_path, marshal.dumps(snap), mode=0o600, durable=False)

    def _read_snapshot_bytes(self) -> bytes:
        if self._snapshot_path is None:
            raise ValueError("no place for a snapshot")
        if self._snapshot_in_data_dir:  # outside git: never through a link (a refused one is just no snapshot)
            try:
                return safe_open.read_bytes(self.data_dir, self._snapshot_rel)
            except UsageError:
                raise ValueError("the snapshot is a link") from None
        return self._snapshot_path.read_bytes()

    def _pack(self, state: State) -> list[bytes]:
        packed = state.pack()
        blobs = []
        for i, rows in enumerate(packed[:_LISTS]):
            if i < len(self._state_blobs) and self._state_blobs[i][0] is rows:
                blobs.append(self._state_blobs[i][1])
            else:
                blobs.append(marshal.dumps(rows))
        return [*blobs, marshal.dumps(packed[_LISTS:])]

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        self.create()
        with os.fdopen(safe_open.open_fd(self.data_dir, self._events_rel, os.O_RDWR), "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
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
            f.seek(0)
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
                self.write_view(state)
            except OSError as exc:
                # The event is durable: say so, not "unexpected OSError". The view is derived; the next write
                # (or a run's recovery) renders it again, and a temp file of this one is never left behind.
                raise StoreError(
                    f"recorded in {self.events_path}, but {self.tasks_path} could not be rewritten: "
                    f"{exc.strerror or exc}; the next write renders it again"
                ) from None
            if start == self._offset:  # else the log held bytes the state does not cover: no snapshot of it
                self._offset, self._end = start + len(payload), start + len(payload)
                self._lines += len(new)
                self._crc = zlib.crc32(payload, self._crc)
                self._write_snapshot(state, f)
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

    def rewrite(self, data: bytes) -> State:
        """Replace the log's bytes (a tampered log put back, iteratr.run.history), in place under the lock, so a
        writer waiting on the lock appends to the restored log; then re-render ``tasks.yaml`` from it."""
        with self._locked() as f:
            f.seek(0)
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            self._view_blobs, self._state_blobs = {}, []
            state = self._load_from(f, save_snapshot=False)
            self.write_view(state)
            return state

    def repair(self) -> State:
        """Before recovery commits what a crash left: a torn last line removed, ``tasks.yaml`` rendered afresh."""
        with self._locked() as f:
            self._repair_torn_tail(f, os.fstat(f.fileno()).st_size)
            f.seek(0)
            state = self._load_from(f, save_snapshot=False)
            self.write_view(state)
            return state

    def _repair_torn_tail(self, f: Any, size: int) -> None:
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        blob = f.read()
        keep = blob.rfind(b"\n") + 1
        print(
            f"iteratr: warning: {self.events_path}: removing a torn last line ({size - keep} bytes) before appending",
            file=sys.stderr,
        )
        os.ftruncate(f.fileno(), keep)

    def write_view(self, state: State) -> None:
        from iteratr.session import tasks_view

        old: dict[str, Any] = {}
        for label, blob in self._view_blobs.items():
            with contextlib.suppress(ValueError, EOFError, TypeError):
                old[label] = marshal.loads(blob)
        text, new = tasks_view.render(self.name, state, old)
        # Derived data, so not durable; the rename means a reader (or `git add`) never sees half a file.
        safe_open.atomic_write(self.data_dir, self._tasks_rel, text.encode("utf-8"), 0o644, durable=False)
        self._view_blobs = {
            label: self._view_blobs[label] if label in old and entry is old[label] else marshal.dumps(entry)
            for label, entry in new.items()
        }


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
