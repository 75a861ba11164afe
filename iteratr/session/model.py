"""The session's records: tasks, notes, iterations and messages, and the vocabulary of their fields.

``iteratr.session.state`` holds them together (and re-exports these names). Plain ``__slots__`` classes, not
dataclasses: importing ``dataclasses`` pulls in ``inspect`` (about 11 ms), a quarter of an ``iteratr tool`` call.
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

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> Iteration:
        it = cls.__new__(cls)
        for name, value in zip(ROW_FIELDS, row, strict=True):
            setattr(it, name, value)
        return it


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
