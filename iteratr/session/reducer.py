"""A pure reducer from events to session state.

``apply(state, event)`` folds one event (a dict as stored in ``events.jsonl``, see ``iteratr.session.store``)
into ``State``; ``replay(events)`` folds many. It does no I/O and never raises on an event it
cannot use: events were validated when written, and an old or newer log must still replay.
"""

from __future__ import annotations

from iteratr.session.state import (
    CLOSED_STATUSES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Event,
    Iteration,
    Message,
    Note,
    State,
    Task,
    id_number,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.session.state: only mypy needs typing
    from typing import Any


def _checked_priority(value: Any) -> int:
    # Sorting and the tools compute with it: a hand-edited "hi" or 9 must be skipped here, not crash them later.
    if value.__class__ is not int or not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise ValueError(f"bad priority {value!r}")
    return int(value)


def _task_added(s: State, d: dict[str, Any], ev: Event) -> None:
    tid = d["id"]
    num = id_number(tid)  # first: a bad id must not leave a half-added task behind
    deps = list(d.get("depends_on", []))
    if not all(dep.__class__ is str for dep in deps):  # ids are joined and parsed as text
        raise ValueError(f"bad depends_on {deps!r}")
    s.tasks[tid] = Task(tid, d["content"], d["status"], _checked_priority(d["priority"]), deps)
    s.last_task_num = max(s.last_task_num, num)
    s.claimed = False
    _track_hook(s, tid, d["status"])


def _track_hook(s: State, tid: str, status: str) -> None:
    """Which completed tasks still wait for their on_task_complete hooks (State.unhooked)."""
    if status == "completed" and tid not in s.completed_hooked:
        s.unhooked.add(tid)
    else:
        s.unhooked.discard(tid)


def _task_status(s: State, d: dict[str, Any], ev: Event) -> None:
    task = s.tasks.get(d["id"])
    if task:
        task.status = d["status"]
        if task.status not in CLOSED_STATUSES:
            s.claimed = False
        _track_hook(s, task.id, task.status)


def _task_priority(s: State, d: dict[str, Any], ev: Event) -> None:
    task = s.tasks.get(d["id"])
    if task:
        task.priority = _checked_priority(d["priority"])


def _task_depends(s: State, d: dict[str, Any], ev: Event) -> None:
    task = s.tasks.get(d["id"])
    if task and d["depends_on"].__class__ is str and d["depends_on"] not in task.depends_on:
        task.depends_on.append(d["depends_on"])


def _note_added(s: State, d: dict[str, Any], ev: Event) -> None:
    s.add_note(Note(d["id"], d["content"], d["type"], ev.get("iteration", 0)))


def _iteration_started(s: State, d: dict[str, Any], ev: Event) -> None:
    it = Iteration(d["n"], d.get("kind", "main"), ev["ts"])
    it.run = d.get("run")
    s.put_iteration(it)


def _iteration_ended(s: State, d: dict[str, Any], ev: Event) -> None:
    it = s.iteration_for_update(d["n"])
    if it is None:
        return
    it.outcome = d["outcome"]
    it.ended_ts = ev["ts"]
    it.error = d.get("error")
    it.stop_reason = d.get("stop_reason")
    it.duration = d.get("duration")
    progress = d.get("progress")
    it.progress = progress if progress.__class__ is bool else None
    usage = d.get("usage") or {}
    tokens, cost = usage.get("total_tokens"), usage.get("cost")
    if tokens.__class__ is int:
        it.tokens = tokens
        s.tokens += tokens
    if cost.__class__ in (int, float):
        it.cost = float(cost)
        s.cost += cost
        s.currency = usage.get("currency") or s.currency
    it.usage_source = usage.get("source")
    it.run = d.get("run") or it.run


def _iteration_summary(s: State, d: dict[str, Any], ev: Event) -> None:
    n = ev.get("iteration", 0)
    it = s.iteration_for_update(n)
    if it is None:  # a summary recorded outside a run, e.g. by hand: keep it on a placeholder
        it = Iteration(n, "manual", ev["ts"])
        it.outcome = "ok"
        s.put_iteration(it)
    it.summary = d["summary"]


def _session_completed(s: State, d: dict[str, Any], ev: Event) -> None:
    # Recorded, never believed: ``State.complete`` is derived from the tasks, so a forged line is harmless.
    s.claimed = True


def _user_message(s: State, d: dict[str, Any], ev: Event) -> None:
    s.messages[d["id"]] = Message(d["id"], d["text"], ev["ts"])
    if d.get("source"):
        s.inbox_consumed[d["source"]] = max(s.inbox_consumed.get(d["source"], 0), d.get("end", 0))
    # A message to a finished session reopens it: the agent must get to act on it (``complete`` sees it pending).
    s.claimed = False


def _inbox_consumed(s: State, d: dict[str, Any], ev: Event) -> None:
    s.inbox_consumed[d["source"]] = max(s.inbox_consumed.get(d["source"], 0), d["end"])


def _user_delivered(s: State, d: dict[str, Any], ev: Event) -> None:
    for mid in d["ids"]:
        msg = s.messages.get(mid)
        if msg and msg.delivered_to is None:
            msg.delivered_to = d["iteration"]


def _hook_ran(s: State, d: dict[str, Any], ev: Event) -> None:
    if d.get("hook") == "on_task_complete" and d.get("task_id"):
        s.completed_hooked.add(d["task_id"])
        s.unhooked.discard(d["task_id"])


_REDUCERS = {
    "task.added": _task_added,
    "task.status": _task_status,
    "task.priority": _task_priority,
    "task.depends": _task_depends,
    "note.added": _note_added,
    "iteration.started": _iteration_started,
    "iteration.ended": _iteration_ended,
    "iteration.summary": _iteration_summary,
    "session.completed": _session_completed,
    "user.message": _user_message,
    "inbox.consumed": _inbox_consumed,
    "user.delivered": _user_delivered,
    "hook.ran": _hook_ran,
}


def apply(state: State, event: Event) -> None:
    reducer = _REDUCERS.get(event.get("type", ""))
    if reducer is not None:  # unknown types come from newer or foreign writers: skip, don't fail
        try:  # noqa: SIM105 - contextlib.suppress costs a context manager per event of a 100,000-event replay
            reducer(state, event.get("data") or {}, event)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            # A line edited by hand or written by a foreign tool lacks a field this reducer needs.
            # Replay must go on (the module's contract): skip it, as an unknown type is skipped.
            pass


def replay(events: list[Event]) -> State:
    state = State()
    for event in events:
        apply(state, event)
    return state
