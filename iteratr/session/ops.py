"""The operations behind ``iteratr tool``: validate against the current state, then record events.

Every write goes through ``Store.transact``, so validation and the append happen under one lock:
two agents adding tasks at once get distinct ids, and a refused request writes nothing. Refusals
raise ``UsageError`` (exit 2) with a message an agent can act on.
"""

from __future__ import annotations

import os

from iteratr.errors import UsageError
from iteratr.session.events import make_event
from iteratr.session.state import (
    NOTE_TYPES,
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TASK_STATUSES,
    Event,
    State,
    Task,
    id_number,
    would_cycle,
)
from iteratr.session.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from typing import Any

STATUS_RULE = "one of " + ", ".join(TASK_STATUSES)
PRIORITY_RULE = f"a whole number {PRIORITY_MIN}..{PRIORITY_MAX} (0 = lowest, 4 = highest)"


def current_iteration(state: State) -> int:
    """The iteration an event belongs to.

    The iteration the store shows running wins: one agent process serves a whole run, so the
    ``ITERATR_ITERATION`` its shell inherited at spawn is stale after the first iteration. Outside a
    running iteration (hooks, a user at a shell) ``ITERATR_ITERATION`` is used, else the last one.
    """
    running = state.unfinished_number()
    if running is not None:
        return running
    raw = os.environ.get("ITERATR_ITERATION", "")
    return int(raw) if raw.isdigit() else state.current_iteration


def check_status(status: str) -> str:
    if status not in TASK_STATUSES:
        raise UsageError(f"invalid status {status!r}: use {STATUS_RULE}")
    return status


def check_priority(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise UsageError(f"invalid priority {raw!r}: use {PRIORITY_RULE}")
    text = str(raw).strip()
    if not text.lstrip("-").isdigit() or not PRIORITY_MIN <= int(text) <= PRIORITY_MAX:
        raise UsageError(f"invalid priority {raw!r}: use {PRIORITY_RULE}")
    return int(text)


def check_content(content: object, what: str = "content") -> str:
    if not isinstance(content, str) or not content.strip():
        raise UsageError(f"empty {what}: give a non-empty text")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 on the command line arrive as lone surrogates
        raise UsageError(f"{what} is not valid UTF-8 text: pass it in UTF-8") from None
    # The log is committed and pushed: a key the agent pastes into a note must not travel with it.
    from iteratr.secrets import Masker

    return Masker()(content.strip())


def normalise_id(raw: str, prefix: str = "TAS") -> str:
    """Accept ``TAS-3``, ``tas-3`` and ``3``; refuse anything else."""
    text = str(raw).strip().upper()
    if text.isdigit():
        text = f"{prefix}-{int(text)}"
    if not text.startswith(prefix + "-") or not text[len(prefix) + 1 :].isdigit():
        raise UsageError(f"invalid id {raw!r}: use {prefix}-<number>, e.g. {prefix}-3")
    return f"{prefix}-{int(text[len(prefix) + 1 :])}"


def require_task(state: State, raw_id: str) -> Task:
    tid = normalise_id(raw_id)
    task = state.tasks.get(tid)
    if task is None:
        known = f"known ids: TAS-1..TAS-{state.last_task_num}" if state.tasks else "there are no tasks yet"
        raise UsageError(f"unknown task {tid}: {known} (see `iteratr tool task-list`)")
    return task


def _new_tasks(state: State, entries: list[dict[str, Any]], iteration: int) -> list[Event]:
    """Validate every entry before making any event: a batch is all or nothing."""
    events: list[Event] = []
    batch_ids: set[str] = set()
    for index, (entry, tid) in enumerate(zip(entries, state.new_task_ids(len(entries)), strict=True)):
        label = f"entry {index}: " if len(entries) > 1 or index else ""
        try:
            if not isinstance(entry, dict):
                raise UsageError('must be an object like {"content": "...", "priority": 2}')
            unknown = set(entry) - {"content", "status", "priority", "depends_on"}
            if unknown:
                raise UsageError(
                    f"unknown field(s) {', '.join(sorted(unknown))}: use content, status, priority, depends_on"
                )
            content = check_content(entry.get("content"))
            status = check_status(entry.get("status") or "remaining")
            priority = check_priority(entry["priority"]) if entry.get("priority") is not None else PRIORITY_DEFAULT
            deps_raw = entry.get("depends_on") or []
            if isinstance(deps_raw, str):
                deps_raw = [deps_raw]
            if not isinstance(deps_raw, list):
                raise UsageError("depends_on must be a list of task ids")
            deps: list[str] = []
            for raw in deps_raw:
                dep = normalise_id(str(raw))
                if dep == tid:
                    raise UsageError(f"{tid} cannot depend on itself")
                if dep not in state.tasks and dep not in batch_ids:
                    raise UsageError(f"depends_on names unknown task {dep}")
                if dep not in deps:
                    deps.append(dep)
        except UsageError as exc:
            raise UsageError(f"{label}{exc.message}" + (" (nothing was added)" if len(entries) > 1 else "")) from None
        data = {"id": tid, "content": content, "status": status, "priority": priority, "depends_on": deps}
        events.append(make_event("task.added", data, iteration))
        batch_ids.add(tid)
    return events


def task_add(store: Store, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not entries:
        raise UsageError("no tasks given: pass a non-empty JSON array of {content, status?, priority?, depends_on?}")
    _, events = store.transact(lambda s: _new_tasks(s, entries, current_iteration(s)))
    return [e["data"] for e in events]


def parse_batch(raw: str) -> list[dict[str, Any]]:
    import json

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f'--tasks is not valid JSON ({exc}): pass an array like \'[{{"content": "..."}}]\'') from None
    if not isinstance(value, list):
        raise UsageError("--tasks must be a JSON array of {content, status?, priority?, depends_on?}")
    return value


def task_status(store: Store, raw_id: str, status: str) -> dict[str, Any]:
    check_status(status)

    def decide(s: State) -> list[Event]:
        task = require_task(s, raw_id)
        if task.status == status:
            return []  # setting the status a task already has is a harmless no-op
        return [make_event("task.status", {"id": task.id, "status": status}, current_iteration(s))]

    state, _ = store.transact(decide)
    return state.tasks[normalise_id(raw_id)].to_dict()


def task_priority(store: Store, raw_id: str, priority: object) -> dict[str, Any]:
    value = check_priority(priority)

    def decide(s: State) -> list[Event]:
        task = require_task(s, raw_id)
        if task.priority == value:
            return []
        return [make_event("task.priority", {"id": task.id, "priority": value}, current_iteration(s))]

    state, _ = store.transact(decide)
    return state.tasks[normalise_id(raw_id)].to_dict()


def task_depends(store: Store, raw_id: str, raw_dep: str) -> dict[str, Any]:
    def decide(s: State) -> list[Event]:
        task = require_task(s, raw_id)
        dep = require_task(s, raw_dep)
        if dep.id == task.id:
            raise UsageError(f"{task.id} cannot depend on itself")
        if dep.id in task.depends_on:
            return []
        if would_cycle(s, task.id, dep.id):
            raise UsageError(f"{task.id} cannot depend on {dep.id}: {dep.id} already depends on {task.id} (a cycle)")
        return [make_event("task.depends", {"id": task.id, "depends_on": dep.id}, current_iteration(s))]

    state, _ = store.transact(decide)
    return state.tasks[normalise_id(raw_id)].to_dict()


def ready(state: State, task: Task) -> bool:
    # status_of: a dependency done long ago is answered from the index of done tasks, never read from the archive
    return all(state.tasks.status_of(d) == "completed" for d in task.depends_on)


def task_next(state: State) -> tuple[Task | None, str]:
    """The task to work on now, and a sentence saying why (or why there is none)."""
    current = state.in_progress()
    if current is not None:
        return current, "in progress: continue it"
    live = state.tasks.live()  # what is not done: never the session's history
    candidates = [t for t in live if t.status == "remaining" and ready(state, t)]
    if candidates:
        best = min(candidates, key=lambda t: (-t.priority, id_number(t.id)))
        return best, "highest priority ready task"
    if not state.tasks:
        return None, "no tasks yet: add them with task-add or task-batch-add"
    open_tasks = state.open_tasks()
    blocked = [t.id for t in live if t.status == "blocked"]
    if not open_tasks and not blocked:
        return None, "all tasks are done: call session-complete"
    if not open_tasks:
        return None, (
            f"nothing left to do but blocked task(s) {', '.join(blocked)}: unblock one with "
            "task-status --status remaining, or call session-complete if nothing more can be done"
        )
    waiting = ", ".join(t.id for t in open_tasks)
    verb = "waits" if len(open_tasks) == 1 else "wait"
    also = f"; blocked: {', '.join(blocked)}" if blocked else ""
    return None, f"no task is ready: {waiting} {verb} on unfinished dependencies{also}"


def note_add(store: Store, content: str, note_type: str) -> dict[str, Any]:
    text = check_content(content)
    if note_type not in NOTE_TYPES:
        raise UsageError(f"invalid note type {note_type!r}: use one of {', '.join(NOTE_TYPES)}")

    def decide(s: State) -> list[Event]:
        return [
            make_event("note.added", {"id": s.next_note_id, "content": text, "type": note_type}, current_iteration(s))
        ]

    _, events = store.transact(decide)
    return {**events[0]["data"], "iteration": events[0]["iteration"]}


def iteration_summary(store: Store, summary: str) -> dict[str, Any]:
    text = check_content(summary, "summary")

    def decide(s: State) -> list[Event]:
        return [make_event("iteration.summary", {"summary": text}, current_iteration(s))]

    _, events = store.transact(decide)
    return {"iteration": events[0]["iteration"], "summary": text}


def session_complete(store: Store) -> dict[str, Any]:
    def decide(s: State) -> list[Event]:
        if not s.tasks:
            raise UsageError("refused: the session has no tasks yet; add the spec's tasks first")
        open_tasks = s.open_tasks()
        if open_tasks:
            listed = "; ".join(f"{t.id} {t.status}: {t.content}" for t in open_tasks[:10])
            more = f" (+{len(open_tasks) - 10} more)" if len(open_tasks) > 10 else ""
            raise UsageError(
                f"refused: {len(open_tasks)} task(s) still open: {listed}{more}; complete, block or cancel them first"
            )
        if s.claimed:
            return []
        return [make_event("session.completed", {}, current_iteration(s))]

    state, _ = store.transact(decide)
    # "complete" is derived (State.complete): with a task blocked the session still needs a person.
    blocked = [t.id for t in state.tasks.live() if t.status == "blocked"]
    return {"complete": state.complete, "tasks": len(state.tasks), "blocked": blocked}
