"""The archive as the state reads it, with a way back to the log: an archive that is lost, unreadable or partial
(begun from a checkpoint) is made again from the log, up to the offset it covers, so the state still equals a full
replay."""

from __future__ import annotations

from iteratr import safe_open
from iteratr.session.archive import Archive, ArchiveError
from iteratr.session.replay import Progress, stream
from iteratr.session.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from iteratr.session.store import Store


class Recovering:
    """The archive, as the state reads it: one that is lost or unreadable (a cache, removed or cut short) is made
    again from the log up to the offset it covered, so the state still equals a full replay."""

    def __init__(self, archive: Archive, store: Store, offset: int) -> None:
        self.archive = archive
        self.store = store
        self.offset = offset

    def note_rows(self) -> list[tuple[Any, ...]]:
        try:
            return self.archive.note_rows()
        except (OSError, ArchiveError):
            return self._replayed().note_rows()

    def iteration_rows(self) -> list[tuple[Any, ...]]:
        try:
            return self.archive.iteration_rows()
        except (OSError, ArchiveError):
            return [it.row() for it in self._replayed().iterations.values()]

    def task_rows(self) -> list[tuple[Any, ...]]:
        try:
            return self.archive.task_rows()
        except (OSError, ArchiveError):
            return [(t.id, t.content, t.status, t.priority, t.depends_on) for t in self._replayed().tasks.values()]

    def message_rows(self) -> list[tuple[Any, ...]]:
        try:
            return self.archive.message_rows()
        except (OSError, ArchiveError):
            return [(m.id, m.text, m.ts, m.delivered_to) for m in self._replayed().messages.values()]

    def _replayed(self) -> State:
        state = State()
        with safe_open.open_read(self.store.data_dir, self.store._events_rel) as f:
            stream(f, state, Progress(0, 0, 0), self.store.events_path, limit=self.offset, warn_torn=False)
        return state
