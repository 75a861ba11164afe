"""What ``iteratr report`` shows that the replayed state does not keep: facts read from the event order.

``State`` holds where things ended (a task's status, an iteration's outcome). The report also needs how they
got there: how many tasks were open after each iteration (the burn-down), which iterations each task was in
progress in, and where each run began. All of it comes from one pass over the events, in log order, so it
holds for a log written across many runs. Pure: no I/O, no git.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iteratr.commands.report_scan import Timeline, scan
from iteratr.session.compact import IdSet
from iteratr.session.state import DONE_STATUSES, Iteration, State

POINTS = 500  # the burn-down's points at most: a long session's chart is sampled, one every so many iterations


class TaskSpan:
    """The iterations one task took: when it first went in progress, when it was completed, and every
    iteration it was in progress during (a task resumed after a failed iteration spans both)."""

    __slots__ = ("completed", "iterations", "started")

    def __init__(self) -> None:
        self.started: int | None = None
        self.completed: int | None = None
        self.iterations: list[int] = []


class Facts:
    __slots__ = ("open_after", "run_starts", "spans", "stride")

    def __init__(self) -> None:
        self.stride = 1  # the burn-down has a point every stride-th iteration
        # iteration -> tasks not done (completed or cancelled) once it ended; blocked ones still need someone
        self.open_after: dict[int, int] = {}
        self.spans: dict[str, TaskSpan] = {}
        self.run_starts: dict[int, str] = {}  # iteration that began a run -> the run's id (its start time)


def timeline(state: State) -> list[Iteration]:
    """The iterations a run made, in order; a summary written by hand outside any run is no iteration. Every one
    held: for short sessions and tests (the report reads them streamed, ``report_scan``)."""
    return [state.iterations[n] for n in sorted(state.iterations) if state.iterations[n].kind != "manual"]


class SpanFold:
    """The iterations each task took, folded one event at a time in log order: the report's one pass, and the
    cache ``iteratr status`` keeps between calls (``status_spans``), so it never passes over the history again.

    ``keep_done``: keep only the last so many done tasks (status shows the last few closed ones), so the fold holds
    what is live, not the history; a done task dropped and later reopened then counts from its reopening only."""

    __slots__ = ("done", "keep_done", "since", "spans", "status")

    def __init__(self, keep_done: int | None = None) -> None:
        self.status: dict[str, str] = {}
        self.since: dict[str, int] = {}  # task -> iteration it went in progress in, while it is in progress
        self.spans: dict[str, TaskSpan] = {}
        self.keep_done = keep_done
        self.done: dict[str, None] = {}  # with keep_done: the done tasks kept, oldest first

    def add(self, ev: dict[str, Any]) -> None:
        data = ev.get("data") or {}
        if not isinstance(data, dict):
            return
        n = ev.get("iteration", 0)
        n = n if isinstance(n, int) else 0
        kind = ev.get("type")
        if kind == "task.added" and isinstance(data.get("id"), str):
            self.status[data["id"]] = str(data.get("status", "remaining"))
            self.spans.setdefault(data["id"], TaskSpan())
            if self.status[data["id"]] == "in_progress":
                self.since[data["id"]] = n
        elif kind == "task.status" and isinstance(data.get("id"), str):
            task_id, new = data["id"], str(data.get("status"))
            if task_id not in self.status:
                if self.keep_done is None:
                    return  # no such task
                self.status[task_id] = "completed"  # one dropped as done (or none: then only shown if it is one)
                self.spans[task_id] = TaskSpan()
            _status_changed(self.spans[task_id], self.since, task_id, new, n)
            self.status[task_id] = new
            if self.keep_done is not None:
                self._keep(task_id, new)

    def _keep(self, task_id: str, new: str) -> None:
        self.done.pop(task_id, None)
        if new not in DONE_STATUSES:
            return
        self.done[task_id] = None
        while len(self.done) > (self.keep_done or 0):
            old = next(iter(self.done))
            del self.done[old], self.status[old], self.spans[old]
            self.since.pop(old, None)

    def span(self, task_id: str, last: int) -> TaskSpan | None:
        """One task's span as of the log's end: one still in progress counts up to ``last``, the last iteration."""
        found = self.spans.get(task_id)
        if found is None or task_id not in self.since:
            return found
        span = TaskSpan()
        span.started, span.completed, span.iterations = found.started, found.completed, list(found.iterations)
        _spent(span, self.since[task_id], last)
        return span

    def pack(self) -> tuple[Any, ...]:
        spans = {k: (v.started, v.completed, v.iterations) for k, v in self.spans.items()}
        return (self.status, self.since, spans, self.keep_done, list(self.done))

    @classmethod
    def unpack(cls, packed: tuple[Any, ...]) -> SpanFold:
        fold = cls(packed[3])
        fold.done = dict.fromkeys(packed[4])
        fold.status, fold.since = dict(packed[0]), dict(packed[1])
        for task_id, (started, completed, iterations) in packed[2].items():
            span = fold.spans[task_id] = TaskSpan()
            span.started, span.completed, span.iterations = started, completed, list(iterations)
        return fold


class OpenCount:
    """How many tasks are not done (completed or cancelled), folded one event at a time: the ids not done, and
    the ids ever added (a status for an id never added changes nothing, as in the reducer)."""

    __slots__ = ("added", "open")

    def __init__(self) -> None:
        self.added = IdSet()
        self.open: set[str] = set()

    def add(self, kind: object, data: dict[str, Any]) -> None:
        task_id = data.get("id")
        if not isinstance(task_id, str):
            return
        if kind == "task.added":
            self.added.add(task_id)
            status = str(data.get("status", "remaining"))
        elif task_id in self.added:
            status = str(data.get("status"))
        else:
            return
        if status in DONE_STATUSES:
            self.open.discard(task_id)
        else:
            self.open.add(task_id)


def gather(
    state: State,
    events: Iterable[dict[str, Any]],
    scanned: Timeline | None = None,
    task_ids: set[str] | None = None,
    points: int = POINTS,
) -> Facts:
    """The facts from one pass over ``events``: the spans of ``task_ids`` (None: every task), the open tasks after
    every ``stride``-th iteration (at most about ``points`` of them, the last one always), and where each shown run
    began (from ``scanned``, the iterations' scan; made here when not given)."""
    scanned = scan(state) if scanned is None else scanned
    facts = Facts()
    fold = SpanFold()
    opens = OpenCount()
    last = state.current_iteration
    stride = facts.stride = max(1, -(-(last + 1) // points))
    for ev in events:
        kind = ev.get("type")
        data = ev.get("data") or {}
        if not isinstance(data, dict):
            continue
        if kind == "task.added" or kind == "task.status":
            opens.add(kind, data)
            if task_ids is None or data.get("id") in task_ids:
                fold.add(ev)
        elif kind == "iteration.ended" and isinstance(data.get("n"), int):
            n = data["n"]
            if n % stride == 0 or n == last:
                facts.open_after[n] = len(opens.open)
    facts.spans = fold.spans
    for task_id, start in fold.since.items():  # still in progress when the log ends
        _spent(facts.spans[task_id], start, last)
    for n in scanned.unfinished:  # the chart shows an unfinished one as it stands
        if n % stride == 0 or n == last:
            facts.open_after[n] = len(opens.open)
    facts.run_starts = scanned.run_starts
    return facts


def _status_changed(span: TaskSpan, since: dict[str, int], task_id: str, new: str, n: int) -> None:
    if new == "in_progress":
        since.setdefault(task_id, n)
        if span.started is None:
            span.started = n
        return
    if task_id in since:
        _spent(span, since.pop(task_id), n)
    if new == "completed":
        span.completed = n
        if not span.iterations:  # completed without ever being marked in progress: that iteration took it
            span.iterations.append(n)


def _spent(span: TaskSpan, start: int, end: int) -> None:
    for n in range(start, max(start, end) + 1):
        if n not in span.iterations:
            span.iterations.append(n)
    span.iterations.sort()
