"""Guard rails as pure functions: derived completion, all-blocked, progress, budgets."""

from __future__ import annotations

from typing import Any

from iteratr.run import guards
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import State


def state_of(*tasks: tuple[str, str], messages: int = 0, notes: tuple[tuple[str, str], ...] = ()) -> State:
    events: list[Any] = []
    for n, (content, status) in enumerate(tasks, 1):
        events.append(
            make_event(
                "task.added",
                {"id": f"TAS-{n}", "content": content, "status": "remaining", "priority": 2, "depends_on": []},
                0,
            )
        )
        if status != "remaining":
            events.append(make_event("task.status", {"id": f"TAS-{n}", "status": status}, 1))
    for n, (kind, text) in enumerate(notes, 1):
        events.append(make_event("note.added", {"id": f"NOT-{n}", "content": text, "type": kind}, 1))
    for n in range(messages):
        events.append(make_event("user.message", {"id": f"MSG-{n + 1}", "text": "hi"}, 1))
    return replay(events)


def test_complete_needs_a_task_every_task_done_and_no_waiting_message() -> None:
    assert not guards.is_complete(state_of())
    assert guards.is_complete(state_of(("a", "completed"), ("b", "cancelled")))
    assert not guards.is_complete(state_of(("a", "completed"), ("b", "blocked")))
    assert not guards.is_complete(state_of(("a", "completed"), messages=1))


def test_a_forged_completed_event_is_not_completion() -> None:
    s = replay([*_events(state_events=True), make_event("session.completed", {}, 1)])
    assert not guards.is_complete(s)


def _events(state_events: bool) -> list[Any]:
    return [
        make_event(
            "task.added", {"id": "TAS-1", "content": "a", "status": "remaining", "priority": 2, "depends_on": []}, 0
        )
    ]


def test_all_blocked_lists_them_with_their_stuck_note() -> None:
    s = state_of(
        ("a", "completed"),
        ("b", "blocked"),
        ("c", "blocked"),
        notes=(("stuck", "TAS-3 needs a key"), ("stuck", "other")),
    )
    assert [t.id for t in guards.all_blocked(s)] == ["TAS-2", "TAS-3"]
    assert guards.latest_stuck_note(s, "TAS-3") == "TAS-3 needs a key"
    assert guards.latest_stuck_note(s, "TAS-2") == "other"
    assert guards.all_blocked(state_of(("a", "blocked"), ("b", "remaining"))) == []
    assert guards.all_blocked(state_of(("a", "blocked"), messages=1)) == []


def test_progress_is_a_closed_or_added_task_a_delivery_or_a_tree_change() -> None:
    before = state_of(("a", "remaining"), ("b", "remaining"))
    churn = state_of(("a", "in_progress"), ("b", "remaining"))
    assert not guards.made_progress(before, churn, delivered=0, tree_changed=False)
    assert guards.made_progress(before, churn, delivered=1, tree_changed=False)
    assert guards.made_progress(before, churn, delivered=0, tree_changed=True)
    assert guards.made_progress(
        before, state_of(("a", "completed"), ("b", "remaining")), delivered=0, tree_changed=False
    )
    assert guards.made_progress(
        before, state_of(("a", "cancelled"), ("b", "remaining")), delivered=0, tree_changed=False
    )
    assert guards.made_progress(
        before, state_of(("a", "remaining"), ("b", "remaining"), ("c", "remaining")), delivered=0, tree_changed=False
    )
    assert not guards.made_progress(
        before, state_of(("a", "blocked"), ("b", "remaining")), delivered=0, tree_changed=False
    )


def test_budgets_name_the_budget_and_the_figure() -> None:
    run, session = guards.Totals(tokens=900, cost=1.5, currency="USD"), guards.Totals(tokens=5000, cost=4.0)
    assert guards.over_budget(guards.Budgets(), run=run, session=session, elapsed=10) is None
    assert guards.over_budget(guards.Budgets(max_cost=2), run=run, session=session, elapsed=10) is None
    said = guards.over_budget(guards.Budgets(max_cost=1.5), run=run, session=session, elapsed=10)
    assert said == "budget max_cost (1.5) reached: this run spent 1.5000 USD"
    said = guards.over_budget(guards.Budgets(session_max_tokens=5000), run=run, session=session, elapsed=10)
    assert said == "budget session_max_tokens (5000) reached: the session used 5,000 tokens"
    said = guards.over_budget(guards.Budgets(max_time=60), run=run, session=session, elapsed=75)
    assert said == "budget max_time (1m00s) reached: this run has taken 1m15s"


def test_a_budget_the_agent_does_not_measure_is_named() -> None:
    nothing = guards.Totals()
    assert guards.unmeasured_budget(guards.Budgets(), nothing) is None
    assert "reports no cost" in (guards.unmeasured_budget(guards.Budgets(max_cost=1), nothing) or "")
    tokens_only = guards.Totals()
    tokens_only.add({"total_tokens": 10})
    assert guards.unmeasured_budget(guards.Budgets(max_tokens=100), tokens_only) is None
    assert "reports no cost" in (guards.unmeasured_budget(guards.Budgets(session_max_cost=1), tokens_only) or "")


def stalled_for(count: int, then_progress_before: int = 0) -> State:
    """A session whose last ``count`` iterations made no progress, after ``then_progress_before`` that did."""
    events: list[Any] = []
    for n in range(1, then_progress_before + count + 1):
        events.append(make_event("iteration.started", {"n": n, "kind": "main"}, n))
        progress = n <= then_progress_before
        events.append(make_event("iteration.ended", {"n": n, "outcome": "ok", "progress": progress}, n))
    return replay(events)


def test_the_stall_count_stops_at_the_limit_asked_for() -> None:
    state = stalled_for(40, then_progress_before=3)
    assert guards.without_progress(state, 0) == 0  # no limit: nothing counted, nothing read
    assert guards.without_progress(state, 5) == 5
    assert guards.without_progress(state, 16) == 16
    assert guards.without_progress(state, 100) == 40  # past the live window: the older iterations are read
    assert guards.without_progress(stalled_for(2, then_progress_before=3), 5) == 2


def test_with_no_limit_the_prompt_says_the_window_is_a_floor() -> None:
    from iteratr.run.prompt import stall_text
    from iteratr.session.state import WINDOW

    assert "The last 16 or more iteration(s)" in stall_text(WINDOW, 0, "TAS-1")
    assert "The last 3 iteration(s) on TAS-1" in stall_text(3, 0, "TAS-1")
    assert "The last 16 iteration(s)" in stall_text(WINDOW, 20, None)
