"""The session's state: tasks, notes, iterations and messages, and the queries and ids the tools need.

``iteratr.session.reducer`` builds it from events; the store snapshots it (``State.pack``/``unpack``).

The state classes are plain ``__slots__`` classes rather than dataclasses on purpose: importing
``dataclasses`` pulls in ``inspect`` (about 11 ms), a quarter of the time budget of one
``iteratr tool`` call, which runs dozens of times per iteration.
"""

from __future__ import annotations

TYPE_CHECKING = False
# typing costs about 3 ms to import, a tenth of an `iteratr tool` call, and annotations are strings
# here (PEP 563): only mypy needs it.
if TYPE_CHECKING:
    from typing import Any

TASK_STATUSES = ("remaining", "in_progress", "completed", "blocked", "cancelled")
CLOSED_STATUSES = frozenset({"completed", "blocked", "cancelled"})
DONE_STATUSES = frozenset({"completed", "cancelled"})  # closed for good: blocked still needs a person
NOTE_TYPES = ("learning", "stuck", "tip", "decision")
PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 0, 4, 2

if TYPE_CHECKING:
    Event = dict[str, Any]
else:
    Event = dict


def id_number(task_or_note_id: str) -> int:
    """``TAS-10`` -> 10, so ids sort by number, never as strings."""
    return int(task_or_note_id.rsplit("-", 1)[1])


class Task:
    __slots__ = ("content", "depends_on", "id", "priority", "status")

    def __init__(self, id: str, content: str, status: str, priority: int, depends_on: list[str]) -> None:
        self.id = id
        self.content = content
        self.status = status
        self.priority = priority
        self.depends_on = depends_on

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "status": self.status,
            "priority": self.priority,
            "depends_on": list(self.depends_on),
        }


class Note:
    __slots__ = ("content", "id", "iteration", "type")

    def __init__(self, id: str, content: str, type: str, iteration: int) -> None:
        self.id = id
        self.content = content
        self.type = type
        self.iteration = iteration

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "content": self.content, "iteration": self.iteration}


class Iteration:
    """One recorded iteration: started, maybe ended, maybe summarised."""

    __slots__ = (
        "cost",
        "duration",
        "ended_ts",
        "error",
        "kind",
        "n",
        "outcome",
        "progress",
        "run",
        "started_ts",
        "stop_reason",
        "summary",
        "tokens",
        "usage_source",
    )

    def __init__(self, n: int, kind: str, started_ts: str) -> None:
        self.n = n
        self.kind = kind
        self.started_ts = started_ts
        self.ended_ts: str | None = None
        self.outcome: str | None = None  # ok | failed | timeout | interrupted; None while unfinished
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.duration: float | None = None
        self.summary: str | None = None
        # The guard rails' facts (iteratr.run.guards): which run it belongs to, whether it made progress, and what
        # its turn cost, as recorded in its events; None where an older log did not record them.
        self.run: str | None = None
        self.progress: bool | None = None
        self.tokens: int | None = None
        self.cost: float | None = None
        self.usage_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def row(self) -> tuple[Any, ...]:
        """The packed form (see ``State.pack``), in ``ROW_FIELDS`` order."""
        return tuple(getattr(self, name) for name in ROW_FIELDS)


# The order of an iteration's packed row: the snapshot stores iterations as tuples of these.
ROW_FIELDS = (
    "n",
    "kind",
    "started_ts",
    "ended_ts",
    "outcome",
    "error",
    "stop_reason",
    "duration",
    "summary",
    "run",
    "progress",
    "tokens",
    "cost",
    "usage_source",
)


class Message:
    """A message from the user, taken from the inbox."""

    __slots__ = ("delivered_to", "id", "text", "ts")

    def __init__(self, id: str, text: str, ts: str) -> None:
        self.id = id
        self.text = text
        self.ts = ts
        self.delivered_to: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "ts": self.ts, "delivered_to": self.delivered_to}


class State:
    __slots__ = (
        "_iteration_rows",
        "_iterations",
        "_note_rows",
        "_note_rows_owned",
        "_notes",
        "claimed",
        "completed_hooked",
        "cost",
        "currency",
        "inbox_consumed",
        "last_task_num",
        "messages",
        "tasks",
        "tokens",
    )

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self._notes: list[Note] = []
        self._iterations: dict[int, Iteration] = {}
        # Notes and iterations unpacked from a snapshot stay rows until first used: most `iteratr tool`
        # calls never look at them, and on a 100,000-event session building them all costs more than
        # the rest of such a call. The rows list as loaded is never changed in place (the store reuses
        # its marshalled bytes while it is the same object): the first note added copies it.
        self._note_rows: list[tuple[Any, ...]] | None = None
        self._note_rows_owned = False
        self._iteration_rows: list[tuple[Any, ...]] | None = None
        self.messages: dict[str, Message] = {}
        # A `session.completed` was recorded since the tasks last reopened. Only a claim: whether the session
        # is complete is derived (``complete``), so a line an agent writes by hand with tasks open changes nothing.
        self.claimed = False
        # Counters only grow, so an id is never handed out twice, even if a task were ever removed.
        self.last_task_num = 0
        # Inbox files already consumed, source -> byte offset (see iteratr.inbox).
        self.inbox_consumed: dict[str, int] = {}
        # Tasks whose on_task_complete hooks have run: each fires once per task.
        self.completed_hooked: set[str] = set()
        self.tokens = 0
        self.cost = 0.0
        self.currency: str | None = None

    @property
    def notes(self) -> list[Note]:
        if self._note_rows is not None:
            self._notes = [Note(*row) for row in self._note_rows]
            self._note_rows = None
        return self._notes

    @notes.setter
    def notes(self, value: list[Note]) -> None:
        self._notes, self._note_rows = value, None

    def note_rows(self) -> list[tuple[Any, ...]]:
        """``(id, content, type, iteration)`` per note, without building the notes if they are still rows."""
        if self._note_rows is not None:
            return self._note_rows
        return [(n.id, n.content, n.type, n.iteration) for n in self._notes]

    def add_note(self, note: Note) -> None:
        if self._note_rows is None:
            self._notes.append(note)
            return
        if not self._note_rows_owned:
            self._note_rows, self._note_rows_owned = list(self._note_rows), True
        self._note_rows.append((note.id, note.content, note.type, note.iteration))

    @property
    def iterations(self) -> dict[int, Iteration]:
        if self._iteration_rows is not None:
            iterations = {}
            for row in self._iteration_rows:
                it = Iteration.__new__(Iteration)
                for name, value in zip(ROW_FIELDS, row, strict=True):
                    setattr(it, name, value)
                iterations[it.n] = it
            self._iterations, self._iteration_rows = iterations, None
        return self._iterations

    @iterations.setter
    def iterations(self, value: dict[int, Iteration]) -> None:
        self._iterations, self._iteration_rows = value, None

    def _last_iteration_row(self) -> tuple[Any, ...] | None:
        rows = self._iteration_rows
        return max(rows, key=lambda row: row[0]) if rows else None

    # The state allocates every id, from what was recorded: callers never build one themselves.
    @property
    def next_task_id(self) -> str:
        return self.new_task_ids(1)[0]

    def new_task_ids(self, count: int) -> list[str]:
        """Ids for ``count`` tasks about to be added together, in order (numbers only grow: never reused)."""
        return [f"TAS-{self.last_task_num + i}" for i in range(1, count + 1)]

    @property
    def next_note_id(self) -> str:
        count = len(self._note_rows) if self._note_rows is not None else len(self._notes)
        return f"NOT-{count + 1}"

    @property
    def next_message_id(self) -> str:
        return self.new_message_ids(1)[0]

    def new_message_ids(self, count: int) -> list[str]:
        """Ids for ``count`` user messages about to be recorded together, in order."""
        return [f"MSG-{len(self.messages) + i}" for i in range(1, count + 1)]

    @property
    def current_iteration(self) -> int:
        """The number of the last iteration started, or 0 before any."""
        if self._iteration_rows is not None:
            last = self._last_iteration_row()
            return last[0] if last else 0
        return max(self._iterations) if self._iterations else 0

    @property
    def next_iteration(self) -> int:
        """Numbers come from what was recorded: no gaps, no repeats."""
        return self.current_iteration + 1 if self._iteration_rows or self._iterations else 0

    def unfinished_number(self) -> int | None:
        """The number of the iteration that is running (started, not ended), without building iterations."""
        if self._iteration_rows is not None:
            last = self._last_iteration_row()
            return last[0] if last is not None and last[4] is None else None
        unfinished = self.unfinished_iteration()
        return unfinished.n if unfinished else None

    def unfinished_iteration(self) -> Iteration | None:
        if not self.iterations:
            return None
        last = self.iterations[max(self.iterations)]
        return last if last.outcome is None else None

    @property
    def complete(self) -> bool:
        """Derived, never claimed: at least one task, every task completed or cancelled, no message waiting."""
        if not self.tasks:
            return False
        for task in self.tasks.values():
            if task.status not in DONE_STATUSES:
                return False
        return not self.pending_messages()

    def pending_messages(self) -> list[Message]:
        return [m for m in self.messages.values() if m.delivered_to is None]

    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.status not in CLOSED_STATUSES]

    def in_progress(self) -> Task | None:
        for task in self.tasks.values():
            if task.status == "in_progress":
                return task
        return None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TASK_STATUSES, 0)
        for task in self.tasks.values():
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_dict() for t in self.tasks.values()],
            "notes": [n.to_dict() for n in self.notes],
            "iterations": [i.to_dict() for i in self.iterations.values()],
            "messages": [m.to_dict() for m in self.messages.values()],
            "complete": self.complete,
            "claimed": self.claimed,
            "last_task_num": self.last_task_num,
            "inbox_consumed": dict(self.inbox_consumed),
            "completed_hooked": sorted(self.completed_hooked, key=id_number),
            "tokens": self.tokens,
            "cost": self.cost,
            "currency": self.currency,
        }

    def pack(self) -> tuple[Any, ...]:
        """The state as lists of tuples of plain values, for the store's snapshot cache.

        Rebuilding from this takes a fraction of ``from_dict``'s time: on a 100,000-event session
        that difference is a good part of an ``iteratr tool`` call's budget. Notes and iterations that
        were never decoded are returned as the very lists ``unpack`` was given.
        """
        if self._iteration_rows is not None:
            iteration_rows = self._iteration_rows
        else:
            iteration_rows = [i.row() for i in self._iterations.values()]
        return (
            [(t.id, t.content, t.status, t.priority, t.depends_on) for t in self.tasks.values()],
            self.note_rows(),
            iteration_rows,
            [(m.id, m.text, m.ts, m.delivered_to) for m in self.messages.values()],
            self.claimed,
            self.last_task_num,
            self.inbox_consumed,
            sorted(self.completed_hooked),
            self.tokens,
            self.cost,
            self.currency,
        )

    @classmethod
    def unpack(cls, packed: tuple[Any, ...] | list[Any]) -> State:
        """The inverse of ``pack``; the lists in ``packed`` are taken over, not copied."""
        tasks, notes, iterations, messages, *scalars = packed
        s = cls()
        s.tasks = {row[0]: Task(*row) for row in tasks}
        s._note_rows = notes
        s._iteration_rows = iterations
        for mid, text, ts, delivered_to in messages:
            msg = s.messages[mid] = Message(mid, text, ts)
            msg.delivered_to = delivered_to
        (s.claimed, s.last_task_num, s.inbox_consumed, hooked, s.tokens, s.cost, s.currency) = scalars
        s.completed_hooked = set(hooked)
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
            s.iterations[it.n] = it
        for m in d["messages"]:
            msg = Message(m["id"], m["text"], m["ts"])
            msg.delivered_to = m["delivered_to"]
            s.messages[msg.id] = msg
        s.claimed = bool(d.get("claimed", False))
        s.last_task_num = d["last_task_num"]
        s.inbox_consumed = dict(d["inbox_consumed"])
        s.completed_hooked = set(d["completed_hooked"])
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
