"""The archive as the state reads it, with a way back to the log: an archive that is lost, unreadable or partial
(begun from a checkpoint) is made again from the log, up to the offset it covers, so the state still equals a full
replay."""

from __future__ import annotations

import contextlib

from iteratr import safe_open
from iteratr.session.archive import Archive, ArchiveError
from iteratr.session.replay import Progress, stream
from iteratr.session.snapshot import save_history
from iteratr.session.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from iteratr.session.store import Store


class Recovering:
    """The archive, as the state reads it: one that is lost or unreadable (a cache, removed or cut short) is made
    again from the log up to the offset it covered, so the state still equals a full replay.

    A partial archive (begun from a committed checkpoint: a fresh clone) is rebuilt whole the first time history
    is asked for: the log up to the offset is replayed once, streamed, spilling into a new archive generation,
    which the store then saves with and the snapshot adopts, so later reads find it whole."""

    def __init__(self, archive: Archive, store: Store, offset: int) -> None:
        self.archive = archive
        self.store = store
        self.offset = offset

    def note_rows(self) -> list[tuple[Any, ...]]:
        return self._rows("notes", lambda state: state.note_rows())

    def iteration_rows(self) -> list[tuple[Any, ...]]:
        return self._rows("iterations", lambda state: [it.row() for it in state.iterations.values()])

    def task_rows(self) -> list[tuple[Any, ...]]:
        return self._rows(
            "tasks", lambda state: [(t.id, t.content, t.status, t.priority, t.depends_on) for t in state.tasks.values()]
        )

    def message_rows(self) -> list[tuple[Any, ...]]:
        return self._rows(
            "messages", lambda state: [(m.id, m.text, m.ts, m.delivered_to) for m in state.messages.values()]
        )

    def iter_rows(self, kind: str) -> Iterator[Any]:
        """The rows of ``kind`` streamed (``Archive.iter_rows``), with the same way back as ``_rows``: a partial
        archive rebuilt whole and streamed, else the rows replayed from the log (held: the rare, broken case). A
        source failing part way is followed by the next from the row it stopped at."""
        given = 0
        sources: list[Archive | None] = [self.archive, None]
        for source in sources:
            if source is None:  # the archive failed: a partial one is rebuilt once, as _rows does
                if not self.archive.partial or given:
                    break
                with contextlib.suppress(OSError, ArchiveError, ValueError):
                    source = rebuild_archive(self.store, self.offset)
                if source is None:
                    break
                if self.store._archive is self.archive:
                    self.store._archive = source
                self.archive = source
            try:
                for index, row in enumerate(source.iter_rows(kind)):
                    if index >= given:
                        given += 1
                        yield row
                return
            except (OSError, ArchiveError):
                pass
        yield from getattr(self, f"{kind[:-1]}_rows")()[given:]

    def _rows(self, kind: str, of_state: Callable[[State], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        try:
            return self.archive.rows(kind)
        except (OSError, ArchiveError):
            pass
        if self.archive.partial:
            try:
                whole = rebuild_archive(self.store, self.offset)
                if whole is not None:
                    if self.store._archive is self.archive:  # the store's next save appends to the whole one
                        self.store._archive = whole
                    self.archive = whole
                    return whole.rows(kind)
            except (OSError, ArchiveError, ValueError):
                pass
        return of_state(self._replayed())

    def _replayed(self) -> State:
        state = State()
        with self.store.view() as f:
            stream(f, state, Progress(0, 0, 0), self.store.events_path, limit=self.offset, warn_torn=False)
        return state


def rebuild_archive(store: Store, offset: int) -> Archive | None:
    """A whole archive of the history in the log's first ``offset`` bytes, replayed streaming (bounded memory); the
    snapshot adopts it if it still covers exactly that much with a partial one."""
    archive = store._snapshot.new_archive()
    if archive is None:
        return None
    state = State(archive)

    def spill(_progress: Progress) -> None:
        save_history(state, archive)

    with store.view() as view:
        stream(view, state, Progress(0, 0, 0), store.events_path, limit=offset, spill=spill, warn_torn=False)
    save_history(state, archive)
    with safe_open.open_read(store.data_dir, store._events_rel) as f:  # the lock is on events.jsonl
        store._snapshot.adopt(archive, offset, f)
    return archive
