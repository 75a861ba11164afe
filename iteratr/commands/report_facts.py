"""What ``iteratr report`` shows that the replayed state does not keep: facts read from the event order.

``State`` holds where things ended (a task's status, an iteration's outcome). The report also needs how they
got there: how many tasks were open after each iteration (the burn-down), which iterations each task was in
progress in, and where each run began. All of it comes from one pass over the events, in log order, so it
holds for a log written across many runs. Pure: no I/O, no git.
"""

from __future__ import annotations

from typing import Any

from iteratr.session.state import DONE_STATUSES, Iteration, State


class TaskSpan:
    """The iterations one task took: when it first went in progress, when it was completed, and every
    iteration it was in progress during (a task resumed after a failed iteration spans both)."""

    __slots__ = ("completed", "iterations", "started")

    def __init__(self) -> None:
        self.started: int | None = None
        self.completed: int | None = None
        self.iterations: list[int] = []


class Facts:
    __slots__ = ("open_after", "run_starts", "spans")

    def __init__(self) -> None:
        # iteration -> tasks not done (completed or cancelled) once it ended; blocked ones still need someone
        self.open_after: dict[int, int] = {}
        self.spans: dict[str, TaskSpan] = {}
        self.run_starts: dict[int, str] = {}  # iteration that began a run -> the run's id (its start time)


def timeline(state: State) -> list[Iteration]:
    """The iterations a run made, in order; a summary written by hand outside any run is no iteration."""
    return [state.iterations[n] for n in sorted(state.iterations) if state.iterations[n].kind != "manual"]


def gather(state: State, events: list[dict[str, Any]]) -> Facts:
    facts = Facts()
    status: dict[str, str] = {}
    since: dict[str, int] = {}  # task -> iteration it went in progress in, while it is in progress
    last = state.current_iteration if state.iterations else 0
    for ev in events:
        data = ev.get("data") or {}
        n = ev.get("iteration", 0)
        n = n if isinstance(n, int) else 0
        kind = ev.get("type")
        if kind == "task.added" and isinstance(data.get("id"), str):
            status[data["id"]] = str(data.get("status", "remaining"))
            facts.spans.setdefault(data["id"], TaskSpan())
            if status[data["id"]] == "in_progress":
                since[data["id"]] = n
        elif kind == "task.status" and data.get("id") in status:
            _status_changed(facts.spans[data["id"]], since, data["id"], str(data.get("status")), n)
            status[data["id"]] = str(data.get("status"))
        elif kind == "iteration.ended" and isinstance(data.get("n"), int):
            facts.open_after[data["n"]] = sum(1 for s in status.values() if s not in DONE_STATUSES)
    for task_id, start in since.items():  # still in progress when the log ends
        _spent(facts.spans[task_id], start, last)
    previous: str | None = None
    for it in timeline(state):
        if it.outcome is None:  # unfinished (running, or its run was killed): the chart shows it as it stands
            facts.open_after[it.n] = sum(1 for s in status.values() if s not in DONE_STATUSES)
        if it.run and it.run != previous:
            facts.run_starts[it.n] = it.run
        previous = it.run or previous
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
