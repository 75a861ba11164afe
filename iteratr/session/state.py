"""The session's state: the live part in memory, history on demand, and the queries and ids the tools need.

``iteratr.session.reducer`` builds it from events; the store snapshots it (``pack_live``/``unpack_live``).

What every ``iteratr tool`` call needs is live: the tasks, the messages, the counters, the last notes and the
last iterations. History (every note, every older iteration) lives in an archive the store keeps beside the
snapshot (``iteratr.session.archive``) and is read only when something asks for all of it (``notes``,
``iterations``), so a call costs what is live, not what a long session accumulated. Iterations are numbered
upwards, so the window of the last ``WINDOW`` numbers holds every iteration still being written; one outside it
that changes (a summary recorded by hand for an old number) is marked and archived again, and the archive's
later row wins.

The records themselves (``Task``, ``Note``, ``Iteration``, ``Message``) are in ``iteratr.session.model``.
"""

from __future__ import annotations

from iteratr.session.compact import IdSet, Messages
from iteratr.session.model import (
    CLOSED_STATUSES,
    DONE_STATUSES,
    NOTE_TYPES,
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    ROW_FIELDS,
    TASK_STATUSES,
    Event,
    Iteration,
    Message,
    Note,
    Task,
    id_number,
)
from iteratr.session.sums import Sums
from iteratr.session.tasks import Tasks
from iteratr.session.windowed import WINDOW, IterationsOfState

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.session.model: only mypy needs typing
    from collections.abc import Iterator
    from typing import Any, Protocol

    class History(Protocol):
        """Where the archived notes and iterations are read from (``iteratr.session.archive.Archive``)."""

        def note_rows(self) -> list[tuple[Any, ...]]: ...
        def iteration_rows(self) -> list[tuple[Any, ...]]: ...
        def task_rows(self) -> list[tuple[Any, ...]]: ...
        def message_rows(self) -> list[tuple[Any, ...]]: ...


__all__ = [
    "CLOSED_STATUSES",
    "DONE_STATUSES",
    "NOTE_TYPES",
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "RECENT_NOTES",
    "ROW_FIELDS",
    "TASK_STATUSES",
    "WINDOW",
    "Event",
    "Iteration",
    "Message",
    "Note",
    "State",
    "Task",
    "Tasks",
    "id_number",
    "would_cycle",
]

RECENT_NOTES = 32  # notes kept live: the prompt and tasks.yaml show 30


class State(IterationsOfState):
    __slots__ = (
        "_archive",
        "_new_notes",
        "_note_count",
        "_notes",
        "_recent",
        "claimed",
        "completed_hooked",
        "cost",
        "currency",
        "inbox_consumed",
        "last_task_num",
        "messages",
        "tasks",
        "tokens",
        "unhooked",
    )

    def __init__(self, archive: History | None = None) -> None:
        # Every task; the done ones (history) in the archive until asked for (iteratr.session.tasks).
        self.tasks = Tasks(archive.task_rows if archive is not None else None)
        self.messages = Messages(archive.message_rows if archive is not None else None)
        # A `session.completed` was recorded since the tasks last reopened. Only a claim: whether the session
        # is complete is derived (``complete``), so a line an agent writes by hand with tasks open changes nothing.
        self.claimed = False
        # Counters only grow, so an id is never handed out twice, even if a task were ever removed.
        self.last_task_num = 0
        # Inbox files already consumed, source -> byte offset (see iteratr.inbox).
        self.inbox_consumed: dict[str, int] = {}
        # Tasks whose on_task_complete hooks have run: each fires once per task.
        self.completed_hooked = IdSet()
        # Completed tasks whose on_task_complete hooks have not run yet: the hooks' to-do, kept as it changes.
        self.unhooked = IdSet()
        self.tokens = 0
        self.cost = 0.0
        self.currency: str | None = None
        self._archive = archive
        # Notes: how many, the last few, those not yet archived, and every note once someone asked for them all.
        self._note_count = 0
        self._recent: list[tuple[Any, ...]] = []
        self._new_notes: list[tuple[Any, ...]] = []
        self._notes: list[Note] | None = None if archive is not None else []
        # Iterations in memory (the window, and any changed since the last save); all of them once asked for.
        self._its: dict[int, Iteration] = {}
        self._all_its = archive is None
        self._archived_max = -1  # numbers up to this may be in the archive only (-1: none is)
        self._max_n = 0
        self._has_its = False
        self._dirty: set[int] = set()  # changed since the last save
        self._live_ns: set[int] = set()  # in the saved window: archived when they leave it
        self._sums = Sums()  # totals of the archived iterations (the guard rails' budgets)

    # -- notes -----------------------------------------------------------------------------------------

    @property
    def notes(self) -> list[Note]:
        """Every note, in log order (reads the archive the first time)."""
        if self._notes is None:
            rows = self._archive.note_rows() if self._archive is not None else []
            self._notes = [Note(*row) for row in (*rows, *self._new_notes)]
        return self._notes

    @notes.setter
    def notes(self, value: list[Note]) -> None:
        self._archive, self._notes = None, list(value)
        self._new_notes = [(n.id, n.content, n.type, n.iteration) for n in value]
        self._recent, self._note_count = self._new_notes[-RECENT_NOTES:], len(value)

    def note_rows(self) -> list[tuple[Any, ...]]:
        """``(id, content, type, iteration)`` of every note."""
        return [(n.id, n.content, n.type, n.iteration) for n in self.notes]

    def iter_note_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every note's row in log order, streamed from the archive (``notes`` holds them all in memory)."""
        if self._notes is not None:
            for n in self._notes:
                yield (n.id, n.content, n.type, n.iteration)
            return
        yield from self.archived_rows("notes")
        yield from list(self._new_notes)

    def recent_note_rows(self, count: int) -> list[tuple[Any, ...]]:
        """The last ``count`` (at most ``RECENT_NOTES``) notes' rows, in log order, without reading the archive."""
        return self._recent[-count:] if count else []

    def recent_notes(self, count: int) -> list[Note]:
        return [Note(*row) for row in self.recent_note_rows(count)]

    def add_note(self, note: Note) -> None:
        row = (note.id, note.content, note.type, note.iteration)
        self._new_notes.append(row)
        self._recent.append(row)
        if len(self._recent) > 2 * RECENT_NOTES:
            del self._recent[:-RECENT_NOTES]
        self._note_count += 1
        if self._notes is not None:
            self._notes.append(note)

    @property
    def note_count(self) -> int:
        return self._note_count

    # The state allocates every id, from what was recorded: callers never build one themselves.
    @property
    def next_task_id(self) -> str:
        return self.new_task_ids(1)[0]

    def new_task_ids(self, count: int) -> list[str]:
        """Ids for ``count`` tasks about to be added together, in order (numbers only grow: never reused)."""
        return [f"TAS-{self.last_task_num + i}" for i in range(1, count + 1)]

    @property
    def next_note_id(self) -> str:
        return f"NOT-{self._note_count + 1}"

    @property
    def next_message_id(self) -> str:
        return self.new_message_ids(1)[0]

    def new_message_ids(self, count: int) -> list[str]:
        """Ids for ``count`` user messages about to be recorded together, in order."""
        return [f"MSG-{len(self.messages) + i}" for i in range(1, count + 1)]

    @property
    def current_iteration(self) -> int:
        """The number of the last iteration started, or 0 before any."""
        return self._max_n

    @property
    def next_iteration(self) -> int:
        """Numbers come from what was recorded: no gaps, no repeats."""
        return self._max_n + 1 if self._has_its else 0

    def unfinished_number(self) -> int | None:
        """The number of the iteration that is running (started, not ended)."""
        unfinished = self.unfinished_iteration()
        return unfinished.n if unfinished else None

    def unfinished_iteration(self) -> Iteration | None:
        last = self.iteration(self._max_n) if self._has_its else None
        return last if last is not None and last.outcome is None else None

    # -- tasks and messages ----------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Derived, never claimed: at least one task, every task completed or cancelled, no message waiting."""
        if not self.tasks:
            return False
        for task in self.tasks.live():
            if task.status not in DONE_STATUSES:
                return False
        return not self.pending_messages()

    def pending_messages(self) -> list[Message]:
        return self.messages.waiting()

    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks.live() if t.status not in CLOSED_STATUSES]

    def in_progress(self) -> Task | None:
        for task in self.tasks.live():
            if task.status == "in_progress":
                return task
        return None

    def counts(self) -> dict[str, int]:
        return self.tasks.counts()

    # -- as data ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_dict() for t in sorted(self.tasks.values(), key=lambda t: id_number(t.id))],
            "notes": [n.to_dict() for n in self.notes],
            "iterations": [i.to_dict() for _, i in sorted(self.iterations.items())],
            "messages": [m.to_dict() for m in self.messages.values()],  # in id-number order
            "complete": self.complete,
            "claimed": self.claimed,
            "last_task_num": self.last_task_num,
            "inbox_consumed": dict(self.inbox_consumed),
            "completed_hooked": sorted(self.completed_hooked, key=id_number),
            "tokens": self.tokens,
            "cost": self.cost,
            "currency": self.currency,
        }

    def history_delta(self) -> dict[str, list[tuple[Any, ...]]]:
        """What the archive lacks, by kind: the notes added since the last save, the iterations leaving the window
        (or changed outside it), the tasks done. ``history_saved`` once they are written."""
        low = self._max_n - WINDOW
        leaving = [n for n in self._its if n <= low and (n in self._dirty or n in self._live_ns)]
        return {
            "notes": list(self._new_notes),
            "iterations": [self._its[n].row() for n in sorted(leaving)],
            "tasks": self.tasks.history_delta(),
            "messages": self.messages.history_delta(),
        }

    def history_saved(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """The rows ``history_delta`` gave are in the archive: memory keeps only what is live (unless all was read)."""
        self.tasks.history_saved(rows["tasks"])
        self.messages.history_saved(rows["messages"])
        iteration_rows = rows["iterations"]
        self._new_notes = []
        low = self._max_n - WINDOW
        if iteration_rows:
            self._archived_max = max(self._archived_max, max(row[0] for row in iteration_rows))
        if self._all_its:  # the archive holds every number up to ``low`` now: its sums, afresh
            self._sums = Sums()
            self._sums.add_rows(self._its[n].row() for n in sorted(self._its) if n <= low)
        else:
            self._sums.add_rows(iteration_rows)
            for row in iteration_rows:
                del self._its[row[0]]
            for n in [n for n in self._its if n <= low]:  # archived before, read back for a change
                del self._its[n]
        self._dirty = set()
        self._live_ns = {n for n in self._its if n > low}

    def pack_live(self) -> tuple[Any, ...]:
        """The live state as tuples of plain values, for the store's snapshot (marshal): no history in it."""
        low = self._max_n - WINDOW
        return (
            self.tasks.live_rows(),
            self.messages.live_rows(),
            self.claimed,
            self.last_task_num,
            self.inbox_consumed,
            self.completed_hooked.pack(),
            self.tokens,
            self.cost,
            self.currency,
            self._note_count,
            self._recent[-RECENT_NOTES:],
            [self._its[n].row() for n in sorted(self._its) if n > low],
            self._max_n,
            self._has_its,
            self._archived_max,
            bytes(self.tasks.done),
            self.messages.archived_bits(),
            self.tasks.recent,
            self.unhooked.pack(),
            self._sums.by,
        )

    @classmethod
    def unpack_live(cls, packed: tuple[Any, ...] | list[Any], archive: History | None) -> State:
        """The inverse of ``pack_live``; history comes from ``archive`` when asked for."""
        (tasks, messages, claimed, last_task_num, consumed, hooked, tokens, cost, currency) = packed[:9]
        s = cls(archive)
        s.tasks = Tasks(archive.task_rows if archive is not None else None, packed[15], packed[17])
        s.unhooked = IdSet(packed[18])
        s._sums = Sums(packed[19])
        for row in tasks:
            s.tasks[row[0]] = Task(*row)
        s.messages = Messages(archive.message_rows if archive is not None else None, packed[16])
        for mid, text, ts, delivered_to in messages:
            msg = s.messages[mid] = Message(mid, text, ts)
            msg.delivered_to = delivered_to
        s.claimed, s.last_task_num, s.inbox_consumed = claimed, last_task_num, consumed
        s.completed_hooked = IdSet(hooked)
        s.tokens, s.cost, s.currency = tokens, cost, currency
        s._note_count, s._recent, window, s._max_n, s._has_its, s._archived_max = packed[9:15]
        s._its = {row[0]: Iteration.from_row(row) for row in window}
        s._live_ns = set(s._its)
        if archive is None:  # nothing was ever archived: what is here is all there is
            s._all_its = s._archived_max < 0
        return s

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        s = cls()
        for t in d["tasks"]:
            s.tasks[t["id"]] = Task(t["id"], t["content"], t["status"], t["priority"], list(t["depends_on"]))
        s.notes = [Note(n["id"], n["content"], n["type"], n["iteration"]) for n in d["notes"]]
        for i in d["iterations"]:
            it = Iteration(i["n"], i["kind"], i["started_ts"])
            for name in Iteration.__slots__:
                setattr(it, name, i.get(name))
            s.put_iteration(it)
        for m in d["messages"]:
            msg = Message(m["id"], m["text"], m["ts"])
            msg.delivered_to = m["delivered_to"]
            s.messages[msg.id] = msg
        s.claimed = bool(d.get("claimed", False))
        s.last_task_num = d["last_task_num"]
        s.inbox_consumed = dict(d["inbox_consumed"])
        s.completed_hooked = IdSet(ids=d["completed_hooked"])
        s.unhooked = IdSet(
            ids=(t.id for t in s.tasks.values() if t.status == "completed" and t.id not in s.completed_hooked)
        )
        s.tokens, s.cost, s.currency = d["tokens"], d["cost"], d["currency"]
        return s


def would_cycle(state: State, task_id: str, depends_on: str) -> bool:
    """True if making ``task_id`` depend on ``depends_on`` closes a cycle (or is a self-dependency)."""
    seen: set[str] = set()
    stack = [depends_on]
    while stack:
        current = stack.pop()
        if current == task_id:
            return True
        if current in seen:
            continue
        seen.add(current)
        task = state.tasks.get(current)
        if task:
            stack.extend(task.depends_on)
    return False
