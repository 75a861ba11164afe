"""Every task of a session by id, with only the live ones in memory.

A task completed or cancelled is history: a long session closes tens of thousands, and a call that loaded them
all would cost the history. So ``Tasks`` keeps in memory the tasks not done (remaining, in progress, blocked) and
any task changed since the last save; done tasks go to the archive (``iteratr.session.archive``) when the store
saves, leaving one byte each in ``done`` (indexed by the task's number: completed or cancelled). That answers
what the tools ask of a done task without reading it: does it exist, is it completed (a dependency is ready), how
many are there. Asking for a done task itself (``get``) reads the archive once; iterating every task reads it too.

It behaves as the ``dict`` it replaces for reading (``get``, ``[]``, ``in``, ``len``, ``values``, ``items``,
iteration in id-number order); the reducer adds with ``[]=``. ``live()`` gives the tasks not done, cheaply.
"""

from __future__ import annotations

from iteratr.session.compact import number_of
from iteratr.session.model import DONE_STATUSES, TASK_STATUSES, Task, id_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

_CODES = {"completed": 1, "cancelled": 2}
_STATUS_OF_CODE = {1: "completed", 2: "cancelled"}
RECENT = 64  # the last done tasks archived, kept in full: what an iteration's commit message and prompt name


_NUMBERS: dict[str, int | None] = {}  # parsed once: the save after every append asks again for each live task


def _number(task_id: str) -> int | None:
    if task_id.__class__ is not str:
        return number_of(task_id, "TAS-")
    n = _NUMBERS.get(task_id, -1)
    if n == -1:
        n = _NUMBERS[task_id] = number_of(task_id, "TAS-")
    return n


class Tasks:
    __slots__ = ("_all", "_live", "_load", "_order", "done", "recent")

    def __init__(
        self,
        load: Callable[[], list[tuple[Any, ...]]] | None = None,
        done: bytes = b"",
        recent: list[tuple[Any, ...]] | None = None,
    ) -> None:
        self._live: dict[str, Task] = {}  # not done, or changed since the last save
        self._order: list[Task] | None = None  # ``_live`` in id-number order; None once a task enters or leaves it
        self.done = bytearray(done)  # per task number: 1 completed, 2 cancelled (archived); 0 not archived
        self._load = load  # the archived rows (a later row of an id replaces an earlier one)
        self.recent: list[tuple[Any, ...]] = recent or []  # the last RECENT rows archived, oldest first
        self._all: dict[str, Task] | None = None if load is not None and any(self.done) else self._live

    # -- what is cheap -----------------------------------------------------------------------------

    def _archived_status(self, task_id: str) -> str | None:
        n = _number(task_id)
        return _STATUS_OF_CODE.get(self.done[n]) if n is not None and n < len(self.done) else None

    def status_of(self, task_id: str) -> str | None:
        """A task's status without reading the archive (None: no such task)."""
        task = self._live.get(task_id)
        return task.status if task is not None else self._archived_status(task_id)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.status_of(task_id) is not None

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        archived = len(self.done) - self.done.count(0)
        return archived + sum(1 for tid in self._live if self._archived_status(tid) is None)

    def __bool__(self) -> bool:
        return bool(self._live) or any(self.done)

    def live(self) -> list[Task]:
        """The tasks not done, in id-number order (sorted once while the same tasks are in memory: a prompt, the
        view and the screen each ask)."""
        if self._order is None:
            self._order = sorted(self._live.values(), key=lambda t: id_number(t.id))
        return [t for t in self._order if t.status not in DONE_STATUSES]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TASK_STATUSES, 0)
        if self._all is not None:
            tasks: Any = self._all.values()
        else:
            counts["completed"], counts["cancelled"] = self.done.count(1), self.done.count(2)
            tasks = self._live.values()
        for task in tasks:
            if self._all is None:
                was = self._archived_status(task.id)
                if was is not None:
                    counts[was] -= 1
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts

    # -- what may read the archive -----------------------------------------------------------------

    def _everything(self) -> dict[str, Task]:
        if self._all is None:
            merged: dict[str, Task] = {}
            for row in self._load() if self._load is not None else []:
                if self._archived_status(row[0]) is not None:
                    merged[row[0]] = Task(*row)
            merged.update(self._live)
            self._all = dict(sorted(merged.items(), key=lambda item: id_number(item[0])))
        return self._all

    def get(self, task_id: str, default: Task | None = None) -> Task | None:
        """A task by id; a done one is read from the archive and kept live until the next save (it may change)."""
        task = self._live.get(task_id)
        if task is None and self._archived_status(task_id) is not None:
            task = self._from_recent(task_id) if self._all is None else None
            task = task or self._everything().get(task_id)
            if task is not None:
                self._live[task_id] = task
                self._order = None
        return task if task is not None else default

    def _from_recent(self, task_id: str) -> Task | None:
        for row in reversed(self.recent):
            if row[0] == task_id:
                task = Task(row[0], row[1], row[2], row[3], list(row[4]))
                if self._all is not None:
                    self._all[task_id] = task
                return task
        return None

    def last_done(self, count: int) -> list[Task]:
        """The ``count`` done tasks with the highest numbers, in number order, reading the archive only if they
        are not among the recently archived ones."""
        numbered: dict[int, Task] = {}
        for live in self._live.values():
            number = _number(live.id)
            if number is None:
                return [t for t in self.values() if t.status in DONE_STATUSES][-count:] if count else []
            numbered[number] = live
        found: list[Task] = []
        n = max(len(self.done) - 1, max(numbered, default=0))
        while n > 0 and len(found) < count:
            task: Task | None = numbered.get(n)
            if task is None and n < len(self.done) and self.done[n]:
                task = self.get(f"TAS-{n}")
            if task is not None and task.status in DONE_STATUSES:
                found.append(task)
            n -= 1
        return found[::-1]

    def __getitem__(self, task_id: str) -> Task:
        task = self.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def __setitem__(self, task_id: str, task: Task) -> None:
        self._live[task_id] = task
        self._order = None
        if self._all is not None and self._all is not self._live:
            self._all[task_id] = task

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._everything()))

    def keys(self) -> list[str]:
        return list(self._everything())

    def values(self) -> list[Task]:
        return list(self._everything().values())

    def items(self) -> list[tuple[str, Task]]:
        return list(self._everything().items())

    # -- saving --------------------------------------------------------------------------------------

    def history_delta(self) -> list[tuple[Any, ...]]:
        """Rows of the done tasks still in memory: the archive takes them."""
        return [
            (t.id, t.content, t.status, t.priority, t.depends_on)
            for t in self._live.values()
            if t.status in DONE_STATUSES and _number(t.id) is not None
        ]

    def history_saved(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.recent = [*self.recent, *rows][-RECENT:]
        if self._all is self._live and rows:  # it was all there was: with no archive to read back, keep a copy
            self._all = dict(self._live) if self._load is None else None
        for row in rows:
            n = _number(row[0])
            assert n is not None
            if n >= len(self.done):
                self.done.extend(bytes(n + 1 - len(self.done) + 1024))
            self.done[n] = _CODES[row[2]]
            del self._live[row[0]]
            self._order = None
        for tid, task in self._live.items():  # reopened since archived: live again
            n = _number(tid)
            if n is not None and n < len(self.done) and task.status not in DONE_STATUSES:
                self.done[n] = 0

    def live_rows(self) -> list[tuple[Any, ...]]:
        return [(t.id, t.content, t.status, t.priority, t.depends_on) for t in self._live.values()]


def changes(before: Tasks, after: Tasks) -> list[tuple[str | None, Task]]:
    """Tasks added or whose status changed from ``before`` to ``after``: (the old status or None, the task now), in
    number order. What a long session keeps in its index is compared as bytes, so this costs what changed."""
    ids = set(before._live) | set(after._live)
    old, new = before.done, after.done
    step = 4096
    for start in range(0, max(len(old), len(new)), step):
        if old[start : start + step] != new[start : start + step]:
            for n in range(start, start + step):
                if (old[n] if n < len(old) else 0) != (new[n] if n < len(new) else 0):
                    ids.add(f"TAS-{n}")
    found = []
    for task_id in ids:
        now = after.status_of(task_id)
        was = before.status_of(task_id)
        if now is not None and was != now:
            task = after.get(task_id)
            if task is not None:
                found.append((was, task))
    return sorted(found, key=lambda pair: id_number(pair[1].id))
