"""Unit tests of the pure reducer ``iteratr.state``: each event type, ids, cycles, and the snapshot round-trip."""

from __future__ import annotations

from typing import Any

import pytest

from iteratr.session.reducer import apply, replay
from iteratr.session.state import State, id_number, would_cycle

TS = "2026-01-02T03:04:05.000000Z"


def ev(type_: str, iteration: int = 0, **data: Any) -> dict[str, Any]:
    return {"v": 1, "ts": TS, "type": type_, "iteration": iteration, "data": data}


def added(num: int, status: str = "remaining", priority: int = 2, deps: list[str] | None = None) -> dict[str, Any]:
    return ev(
        "task.added", id=f"TAS-{num}", content=f"task {num}", status=status, priority=priority, depends_on=deps or []
    )


def test_task_added_records_every_field_and_priority_zero() -> None:
    s = replay([added(1, priority=0), added(2, status="in_progress", priority=4, deps=["TAS-1"])])
    assert s.tasks["TAS-1"].to_dict() == {
        "id": "TAS-1",
        "content": "task 1",
        "status": "remaining",
        "priority": 0,
        "depends_on": [],
    }
    assert s.tasks["TAS-2"].priority == 4
    assert s.tasks["TAS-2"].status == "in_progress"
    assert s.tasks["TAS-2"].depends_on == ["TAS-1"]
    assert list(s.tasks) == ["TAS-1", "TAS-2"]


def test_next_task_id_follows_the_highest_id_ever_added() -> None:
    s = replay([added(1), added(5), added(3)])
    assert s.last_task_num == 5
    assert s.next_task_id == "TAS-6"
    apply(s, ev("task.status", id="TAS-5", status="cancelled"))
    assert s.next_task_id == "TAS-6"  # a cancelled task keeps its id


def test_note_ids_count_up_and_notes_keep_their_iteration() -> None:
    s = State()
    assert s.next_note_id == "NOT-1"
    apply(s, ev("note.added", iteration=3, id="NOT-1", content="c", type="tip"))
    assert s.next_note_id == "NOT-2"
    assert s.notes[0].to_dict() == {"id": "NOT-1", "type": "tip", "content": "c", "iteration": 3}


def test_task_status_priority_and_depends_update_the_task() -> None:
    s = replay([added(1), added(2)])
    apply(s, ev("task.status", id="TAS-2", status="completed"))
    apply(s, ev("task.priority", id="TAS-2", priority=0))
    apply(s, ev("task.depends", id="TAS-2", depends_on="TAS-1"))
    apply(s, ev("task.depends", id="TAS-2", depends_on="TAS-1"))  # accumulates without duplicates
    assert s.tasks["TAS-2"].to_dict() == {
        "id": "TAS-2",
        "content": "task 2",
        "status": "completed",
        "priority": 0,
        "depends_on": ["TAS-1"],
    }


def test_events_about_unknown_tasks_or_of_unknown_types_are_skipped() -> None:
    s = replay([added(1)])
    before = s.to_dict()
    for event in (
        ev("task.status", id="TAS-9", status="completed"),
        ev("task.priority", id="TAS-9", priority=4),
        ev("task.depends", id="TAS-9", depends_on="TAS-1"),
        ev("something.new.from.a.later.version", x=1),
        {"type": "task.status"},  # no data at all
        {"v": 1, "ts": TS, "iteration": 0, "data": {}},  # no type
        ev("task.added", content="no id"),  # fields missing: hand-edited or foreign lines
        ev("task.added", id="TAS-x", content="bad id", status="remaining", priority=2),
        {"type": "note.added", "data": ["not", "an", "object"]},
        {"type": "iteration.started", "data": {"n": 9}},  # no ts
        {"type": "user.delivered", "data": {"ids": 5, "iteration": 1}},
        # Wrong types that replay used to accept and that crashed task-next or task-list later:
        ev("task.priority", id="TAS-1", priority="hi"),
        ev("task.priority", id="TAS-1", priority=9),
        ev("task.added", id="TAS-2", content="c", status="remaining", priority="4"),
        ev("task.added", id="TAS-2", content="c", status="remaining", priority=True),
        ev("task.added", id="TAS-2", content="c", status="remaining", priority=2, depends_on=[5]),
        ev("task.depends", id="TAS-1", depends_on=5),
    ):
        apply(s, event)
    assert s.to_dict() == before


def test_session_completed_and_reopened_by_a_new_open_task() -> None:
    s = replay([added(1, status="completed"), ev("session.completed")])
    assert s.complete is True
    apply(s, ev("task.status", id="TAS-1", status="cancelled"))
    assert s.complete is True  # closed stays closed
    apply(s, ev("task.status", id="TAS-1", status="remaining"))
    assert s.complete is False
    apply(s, ev("session.completed"))
    apply(s, added(2))
    assert s.complete is False


def test_a_user_message_reopens_a_complete_session_and_tracks_the_inbox() -> None:
    s = replay([ev("session.completed"), ev("user.message", id="MSG-1", text="hi", source="inbox.1", end=10)])
    assert s.complete is False
    assert s.inbox_consumed == {"inbox.1": 10}
    assert [m.id for m in s.pending_messages()] == ["MSG-1"]
    assert s.next_message_id == "MSG-2"
    apply(s, ev("inbox.consumed", source="inbox.1", end=4))  # never goes backwards
    assert s.inbox_consumed == {"inbox.1": 10}
    apply(s, {**ev("user.delivered"), "data": {"ids": ["MSG-1"], "iteration": 2}})
    apply(s, {**ev("user.delivered"), "data": {"ids": ["MSG-1"], "iteration": 5}})  # delivered once
    assert s.messages["MSG-1"].delivered_to == 2
    assert s.pending_messages() == []


def test_iterations_record_outcome_usage_and_summary() -> None:
    s = replay(
        [
            ev("iteration.started", 0, n=0, kind="planning"),
            ev(
                "iteration.ended",
                0,
                n=0,
                outcome="ok",
                duration=1.5,
                usage={"total_tokens": 100, "cost": 0.25, "currency": "USD"},
            ),
            ev("iteration.started", 1, n=1, kind="main"),
            ev("iteration.summary", 1, summary="did things"),
        ]
    )
    assert s.current_iteration == 1
    assert s.next_iteration == 2
    assert s.iterations[0].outcome == "ok"
    assert s.iterations[0].duration == 1.5
    assert s.tokens == 100
    assert s.cost == 0.25
    assert s.currency == "USD"
    unfinished = s.unfinished_iteration()
    assert unfinished is not None and unfinished.n == 1
    assert unfinished.summary == "did things"
    apply(s, ev("iteration.ended", 1, n=1, outcome="failed", error="boom"))
    assert s.unfinished_iteration() is None
    assert s.iterations[1].error == "boom"


def test_a_summary_outside_a_run_is_kept_on_a_placeholder_iteration() -> None:
    s = replay([ev("iteration.summary", 4, summary="by hand")])
    assert s.iterations[4].kind == "manual"
    assert s.iterations[4].summary == "by hand"
    assert s.iterations[4].outcome == "ok"


def test_hook_ran_marks_completed_tasks_once() -> None:
    s = replay(
        [
            ev("hook.ran", hook="on_task_complete", task_id="TAS-2"),
            ev("hook.ran", hook="other", task_id="TAS-3"),
        ]
    )
    assert s.completed_hooked == {"TAS-2"}


def test_counts_open_tasks_and_in_progress() -> None:
    s = replay([added(1, "completed"), added(2, "blocked"), added(3, "cancelled"), added(4), added(5, "in_progress")])
    assert s.counts() == {"remaining": 1, "in_progress": 1, "completed": 1, "blocked": 1, "cancelled": 1}
    assert [t.id for t in s.open_tasks()] == ["TAS-4", "TAS-5"]
    in_progress = s.in_progress()
    assert in_progress is not None and in_progress.id == "TAS-5"


@pytest.mark.parametrize(
    ("edges", "task", "dep", "cycle"),
    [
        ([], "TAS-1", "TAS-1", True),  # self
        ([("TAS-2", "TAS-1")], "TAS-1", "TAS-2", True),  # direct: 2 -> 1, adding 1 -> 2
        ([("TAS-1", "TAS-2"), ("TAS-2", "TAS-3")], "TAS-3", "TAS-1", True),  # indirect a -> b -> c -> a
        ([("TAS-1", "TAS-2"), ("TAS-2", "TAS-3")], "TAS-1", "TAS-3", False),  # a shortcut is no cycle
        ([("TAS-2", "TAS-3")], "TAS-1", "TAS-2", False),
    ],
)
def test_would_cycle(edges: list[tuple[str, str]], task: str, dep: str, cycle: bool) -> None:
    s = replay([added(n) for n in (1, 2, 3)] + [ev("task.depends", id=a, depends_on=b) for a, b in edges])
    assert would_cycle(s, task, dep) is cycle


def test_id_number_is_numeric_so_ten_sorts_after_two() -> None:
    assert id_number("TAS-10") == 10
    assert sorted(["TAS-10", "TAS-2", "TAS-1"], key=id_number) == ["TAS-1", "TAS-2", "TAS-10"]


def test_to_dict_from_dict_round_trips_every_field() -> None:
    s = replay(
        [
            added(1, priority=0),
            added(2, deps=["TAS-1"]),
            ev("note.added", 1, id="NOT-1", content="n", type="learning"),
            ev("iteration.started", 1, n=1, kind="main"),
            ev("iteration.ended", 1, n=1, outcome="ok", duration=2.0, usage={"total_tokens": 7, "cost": 0.5}),
            ev("iteration.summary", 1, summary="s"),
            ev("user.message", id="MSG-1", text="t", source="in", end=3),
            ev("hook.ran", hook="on_task_complete", task_id="TAS-1"),
            ev("session.completed"),
        ]
    )
    again = State.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()
    assert again.next_task_id == "TAS-3"
    assert again.tasks["TAS-2"].depends_on is not s.tasks["TAS-2"].depends_on  # no shared lists


class MemoryArchive:
    """The archive's contract (``iteratr.session.archive.Archive``) in memory, counting its reads."""

    def __init__(self) -> None:
        self.kept: dict[str, list[tuple[Any, ...]]] = {"notes": [], "iterations": [], "tasks": [], "messages": []}
        self.reads = 0

    def append(self, kind: str, rows: list[tuple[Any, ...]]) -> None:
        self.kept[kind].extend(rows)

    def note_rows(self) -> list[tuple[Any, ...]]:
        self.reads += 1
        return list(self.kept["notes"])

    def iteration_rows(self) -> list[tuple[Any, ...]]:
        self.reads += 1
        return list(self.kept["iterations"])

    def task_rows(self) -> list[tuple[Any, ...]]:
        self.reads += 1
        return list(self.kept["tasks"])

    def message_rows(self) -> list[tuple[Any, ...]]:
        self.reads += 1
        return list(self.kept["messages"])


def saved_and_unpacked(s: State, archive: MemoryArchive | None = None) -> tuple[State, MemoryArchive]:
    """``s`` as the store saves it (history to the archive, the live part through marshal) and reads it back."""
    import marshal

    from iteratr.session.snapshot import save_history

    archive = archive or MemoryArchive()
    save_history(s, archive)  # type: ignore[arg-type]
    return State.unpack_live(marshal.loads(marshal.dumps(s.pack_live())), archive), archive


def test_pack_live_unpack_live_round_trips_every_field_through_marshal() -> None:
    s = replay(
        [
            added(1, priority=0),
            added(2, deps=["TAS-1"]),
            ev("note.added", 1, id="NOT-1", content="n", type="learning"),
            ev("iteration.started", 1, n=1, kind="main"),
            ev(
                "iteration.ended",
                1,
                n=1,
                outcome="timeout",
                duration=2.0,
                stop_reason="x",
                usage={"total_tokens": 7, "cost": 0.5, "currency": "EUR"},
            ),
            ev("iteration.summary", 1, summary="s"),
            ev("user.message", id="MSG-1", text="t", source="in", end=3),
            {**ev("user.delivered"), "data": {"ids": ["MSG-1"], "iteration": 1}},
            ev("hook.ran", hook="on_task_complete", task_id="TAS-1"),
            ev("session.completed"),
        ]
    )
    expected = s.to_dict()
    again, _ = saved_and_unpacked(s)
    assert again.to_dict() == expected
    apply(again, ev("task.depends", id="TAS-2", depends_on="TAS-3"))  # unpacked lists are live and mutable
    assert again.tasks["TAS-2"].depends_on == ["TAS-1", "TAS-3"]


def long_history(iterations: int = 60) -> list[dict[str, Any]]:
    events = [added(1)]
    for n in range(1, iterations + 1):
        events.append(ev("iteration.started", n, n=n, kind="main"))
        events.append(ev("note.added", n, id=f"NOT-{n}", content=f"note {n}", type="tip"))
        if n < iterations:
            events.append(ev("iteration.ended", n, n=n, outcome="ok", duration=1.0, usage={"total_tokens": n}))
    return events


def test_an_unpacked_state_answers_what_is_live_without_reading_the_history() -> None:
    from iteratr.session.state import RECENT_NOTES, WINDOW

    events = long_history()
    s, archive = saved_and_unpacked(replay(events))
    full = replay(events)
    assert s.next_note_id == "NOT-61"
    assert (s.current_iteration, s.next_iteration, s.unfinished_number()) == (60, 61, 60)
    assert s.recent_note_rows(30) == full.note_rows()[-30:]
    assert [it.n for it in s.recent_iterations(5)] == [56, 57, 58, 59, 60]
    assert s.tokens == full.tokens and s.note_count == 60
    assert len(s.pack_live()[10]) <= RECENT_NOTES and len(s.pack_live()[11]) <= WINDOW  # the snapshot is live-sized
    assert archive.reads == 0
    assert s.to_dict() == full.to_dict()  # every note and iteration, from the archive
    assert archive.reads == 2


def test_changes_to_an_unpacked_state_saved_again_equal_a_full_replay() -> None:
    events = long_history()
    s, archive = saved_and_unpacked(replay(events[:50]))
    later = [
        *events[50:],
        ev("iteration.summary", 3, summary="an old iteration's summary, recorded by hand"),
        ev("iteration.ended", 60, n=60, outcome="failed", error="x"),
        ev("note.added", 60, id="NOT-61", content="late", type="stuck"),
    ]
    for event in later[:-2]:
        apply(s, event)
    s, _ = saved_and_unpacked(s, archive)
    for event in later[-2:]:
        apply(s, event)
    s, _ = saved_and_unpacked(s, archive)
    assert s.to_dict() == replay(events[:50] + later).to_dict()
    assert s.iterations[3].summary == "an old iteration's summary, recorded by hand"


def test_lazy_and_built_states_agree() -> None:
    events = long_history()
    lazy, _ = saved_and_unpacked(replay(events))
    built, _ = saved_and_unpacked(replay(events))
    assert built.notes and built.iterations  # read the history
    for s in (lazy, built):
        apply(s, ev("iteration.ended", 60, n=60, outcome="failed", error="x"))
    assert lazy.unfinished_number() is None is built.unfinished_number()
    assert lazy.current_iteration == built.current_iteration == 60
    assert lazy.to_dict() == built.to_dict()
    empty, _ = saved_and_unpacked(State())
    assert (empty.current_iteration, empty.next_iteration, empty.unfinished_number()) == (0, 0, None)
