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


def test_pack_unpack_round_trips_every_field_through_marshal() -> None:
    import marshal

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
    again = State.unpack(marshal.loads(marshal.dumps(s.pack())))
    assert again.to_dict() == s.to_dict()
    apply(again, ev("task.depends", id="TAS-2", depends_on="TAS-3"))  # unpacked lists are live and mutable
    assert again.tasks["TAS-2"].depends_on == ["TAS-1", "TAS-3"]


def unpacked_with_notes_and_iterations() -> tuple[State, tuple[Any, ...]]:
    import marshal

    s = replay(
        [
            added(1),
            ev("note.added", 1, id="NOT-1", content="a", type="tip"),
            ev("note.added", 2, id="NOT-2", content="b", type="stuck"),
            ev("iteration.started", 1, n=1, kind="main"),
            ev("iteration.ended", 1, n=1, outcome="ok", duration=1.0),
            ev("iteration.started", 2, n=2, kind="main"),
        ]
    )
    packed = marshal.loads(marshal.dumps(s.pack()))
    return State.unpack(packed), packed


def test_unpacked_notes_and_iterations_answer_without_being_built() -> None:
    s, packed = unpacked_with_notes_and_iterations()
    assert s.next_note_id == "NOT-3"
    assert s.current_iteration == 2
    assert s.next_iteration == 3
    assert s.unfinished_number() == 2
    assert s.note_rows() is packed[1]
    again = s.pack()
    assert again[1] is packed[1] and again[2] is packed[2]  # untouched: handed back as they came
    assert s._note_rows is not None and s._iteration_rows is not None  # still not built
    iteration = s.unfinished_iteration()
    assert iteration is not None and iteration.n == 2
    assert [n.id for n in s.notes] == ["NOT-1", "NOT-2"]
    assert s.notes[1].iteration == 2


def test_adding_a_note_to_unpacked_rows_leaves_the_packed_list_alone() -> None:
    s, packed = unpacked_with_notes_and_iterations()
    before = list(packed[1])
    apply(s, ev("note.added", 3, id="NOT-3", content="c", type="decision"))
    apply(s, ev("note.added", 3, id="NOT-4", content="d", type="tip"))
    assert packed[1] == before
    assert s.pack()[1] is not packed[1]
    assert s.next_note_id == "NOT-5"
    assert [(n.id, n.iteration) for n in s.notes] == [("NOT-1", 1), ("NOT-2", 2), ("NOT-3", 3), ("NOT-4", 3)]


def test_lazy_and_built_states_agree() -> None:
    lazy, _ = unpacked_with_notes_and_iterations()
    built, _ = unpacked_with_notes_and_iterations()
    assert built.notes and built.iterations  # build them
    for s in (lazy, built):
        apply(s, ev("iteration.ended", 2, n=2, outcome="failed", error="x"))
    assert lazy.unfinished_number() is None is built.unfinished_number()
    assert lazy.current_iteration == built.current_iteration == 2
    assert lazy.to_dict() == built.to_dict()
    empty = State.unpack(State().pack())
    assert (empty.current_iteration, empty.next_iteration, empty.unfinished_number()) == (0, 0, None)
