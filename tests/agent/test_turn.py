"""``answer_permission`` with real ``acp.schema`` objects: the policy decides, the answer carries its option, and
every decision is reported (a PermissionEvent with its reason, and the log at info)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from acp import schema as s

from iteratr.agent import permissions as perm
from iteratr.agent.events import PermissionEvent, ToolCallEvent
from iteratr.agent.turn import Turn, answer_permission

TREE = Path("/work/tree")
OPTIONS = [
    s.PermissionOption(option_id=kind.replace("_", "-"), name=kind, kind=kind)
    for kind in ("allow_always", "allow_once", "reject_once", "reject_always")
]


def ask(
    policy: perm.Policy,
    *,
    title: str | None = "run it",
    kind: Any = "execute",
    raw: object = None,
    paths: tuple[str, ...] = (),
    options: list[s.PermissionOption] = OPTIONS,
    turn: Turn | None = None,
) -> tuple[object, list[object]]:
    """The outcome sent to the agent (AllowedOutcome or DeniedOutcome) and the events emitted."""
    call = s.ToolCallUpdate(
        tool_call_id="call-1",
        title=title,
        kind=kind,
        raw_input=raw,
        locations=[s.ToolCallLocation(path=p) for p in paths] or None,
    )
    events: list[object] = []
    answer = answer_permission(
        Turn() if turn is None else turn, call, options, events.append, policy=policy, work_tree=TREE
    )
    return answer.outcome, events


def chosen(outcome: object) -> str | None:
    return outcome.option_id if isinstance(outcome, s.AllowedOutcome) else None


def test_default_allows_once_even_when_always_is_offered_first() -> None:
    outcome, events = ask(perm.DEFAULT, title="ls")
    assert chosen(outcome) == "allow-once"
    assert events == [PermissionEvent("ls", "allow_once", "default policy")]


def test_allow_always_only_when_no_allow_once_is_offered() -> None:
    outcome, _ = ask(perm.DEFAULT, options=[OPTIONS[0], OPTIONS[2]])
    assert chosen(outcome) == "allow-always"


def test_mode_deny_rejects_everything() -> None:
    deny = perm.parse_policy("deny")
    for kind in ("read", "edit", "execute", "fetch", None):
        outcome, events = ask(deny, kind=kind, title="anything")
        assert chosen(outcome) == "reject-once"
        assert events == [PermissionEvent("anything", "reject_once", "mode deny")]


def test_a_rule_denies_by_command_glob_and_says_which() -> None:
    policy = perm.parse_policy(['deny execute "git push*"'])
    outcome, events = ask(policy, title="push it", raw={"command": "cd x && git push origin main"})
    assert chosen(outcome) == "reject-once"
    assert events == [
        PermissionEvent("push it", "reject_once", "rule 1 'deny execute \"git push*\"' ('git push origin main')")
    ]
    outcome, events = ask(policy, title="ls", raw={"command": "ls"})
    assert chosen(outcome) == "allow-once"
    assert events == [PermissionEvent("ls", "allow_once", "mode allow")]  # not the default policy any more


def test_outside_work_tree_uses_the_locations_and_the_tree() -> None:
    policy = perm.parse_policy(["deny edit outside-work-tree"])
    inside, _ = ask(policy, kind="edit", title="write a", paths=(str(TREE / "a.txt"),))
    outside, events = ask(policy, kind="edit", title="write b", paths=("/etc/b.txt",))
    assert (chosen(inside), chosen(outside)) == ("allow-once", "reject-once")
    assert events == [
        PermissionEvent(
            "write b", "reject_once", "rule 1 'deny edit outside-work-tree' (/etc/b.txt is outside the work tree)"
        )
    ]


def test_the_kind_and_title_come_from_the_tool_call_when_the_request_leaves_them_out() -> None:
    turn = Turn()
    turn.tools["call-1"] = ("wget example.com", "fetch", "pending")
    outcome, events = ask(perm.parse_policy(["deny fetch"]), title=None, kind=None, turn=turn)
    assert chosen(outcome) == "reject-once"
    assert events == [PermissionEvent("wget example.com", "reject_once", "rule 1 'deny fetch' (kind fetch)")]


def test_no_option_to_pick_answers_cancelled_and_says_why() -> None:
    outcome, events = ask(perm.DEFAULT, options=[OPTIONS[2]])
    assert isinstance(outcome, s.DeniedOutcome) and outcome.outcome == "cancelled"
    assert len(events) == 1 and isinstance(events[0], PermissionEvent) and events[0].option == "cancelled"
    assert "no allow option offered" in events[0].reason
    outcome, _ = ask(perm.parse_policy("deny"), options=[OPTIONS[1]])
    assert isinstance(outcome, s.DeniedOutcome)


@pytest.mark.parametrize("state", ["none", "cancelling"])
def test_no_turn_or_a_cancelled_turn_answers_cancelled(state: str) -> None:
    call = s.ToolCallUpdate(tool_call_id="call-9", title="late")
    turn = Turn(cancel_requested=True) if state == "cancelling" else None
    events: list[object] = []
    answer = answer_permission(turn, call, OPTIONS, events.append, work_tree=TREE)
    assert isinstance(answer.outcome, s.DeniedOutcome) and answer.outcome.outcome == "cancelled"
    why = "no turn is running" if state == "none" else "the turn is being cancelled"
    assert events == [PermissionEvent("late", "cancelled", why)]


def test_every_decision_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="iteratr.agent")
    ask(perm.parse_policy(['deny execute "git push*"']), title="git push origin main", raw={"command": "git push"})
    ask(perm.DEFAULT, title="ls")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "permission execute 'git push origin main': denied execute 'git push origin main' by rule 1 "
        "'deny execute \"git push*\"' ('git push origin main')",
        "permission execute 'ls': allowed execute 'ls' by mode allow",
    ]


def test_a_tool_calls_exit_status_and_output_come_from_its_raw_output_or_content() -> None:
    """opencode says "completed" of a command that exited 1, with {"output", "metadata": {"exit"}} in rawOutput."""
    import acp

    turn, events = Turn(), list[ToolCallEvent]()
    emit = cast("Callable[[object], None]", events.append)
    turn.on_update(acp.start_tool_call("c1", "pytest -q", kind="execute", status="in_progress"), emit)
    raw = {"output": "1 failed, 2 passed\n", "metadata": {"exit": 1, "description": "run the tests"}}
    turn.on_update(acp.update_tool_call("c1", status="completed", raw_output=raw), emit)
    final = events[-1]
    assert final.final
    assert (final.status, final.exit_status, final.output, final.succeeded) == (
        "completed",
        1,
        "1 failed, 2 passed\n",
        False,
    )
    # No rawOutput: the text content is the output, and the status alone decides.
    turn.on_update(acp.start_tool_call("c2", "read x", kind="read", status="in_progress"), emit)
    content = [acp.tool_content(acp.text_block("no such file"))]
    turn.on_update(acp.update_tool_call("c2", status="failed", content=content), emit)
    assert (events[-1].exit_status, events[-1].output, events[-1].succeeded) == (None, "no such file", False)
    turn.on_update(acp.start_tool_call("c3", "ls", status="in_progress"), emit)
    turn.on_update(acp.update_tool_call("c3", status="completed", raw_output={"exitCode": 0}), emit)
    assert (events[-1].exit_status, events[-1].succeeded) == (0, True)
