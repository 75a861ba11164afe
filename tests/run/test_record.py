"""Recording and recovery without a loop: ``run.record`` against a temp store and a real temp git repo,
and ``run.attempt``'s classification of a turn, which is pure."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from iteratr import gitlocks
from iteratr.agent.events import AgentDied, ModelError, TurnFailed, TurnResult, TurnTimeout, Usage
from iteratr.errors import StoreError
from iteratr.run.attempt import EMPTY_TURN, PLANNED_NOTHING, Attempt, check_planning, classify, classify_error
from iteratr.run.record import UNFINISHED, Recorder, commit_message
from iteratr.session import ops
from iteratr.session.events import make_event
from iteratr.session.state import State
from tests.conftest import git


def printed(recorder: Recorder) -> str:
    stream = recorder.out.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def subjects(repo: Path) -> list[str]:
    return git(repo, "log", "--reverse", "--format=%s", "main..iteratr/S").splitlines()


# -- classifying a turn --------------------------------------------------------------------------------------


def result(stop_reason: str = "end_turn", text: str = "done", tools: int = 0) -> TurnResult:
    return TurnResult(stop_reason, text, tools, Usage(10, 5, 15, 0.5, "USD"), "m/one", "sid")


@pytest.mark.parametrize(
    ("turn", "outcome", "error"),
    [
        (result(), "ok", None),
        (result(text="", tools=1), "ok", None),  # a tool call is output enough
        (result(text="  \n"), "failed", EMPTY_TURN),
        (result("max_tokens"), "failed", "the model hit its output token limit (stop reason max_tokens)"),
        (result("refusal"), "failed", "the model refused to continue (stop reason refusal)"),
        (result("cancelled"), "failed", "the agent cancelled the turn (stop reason cancelled)"),
        (result("weird"), "failed", "the agent stopped with 'weird'"),
    ],
)
def test_classify_a_turn_that_ended(turn: TurnResult, outcome: str, error: str | None) -> None:
    attempt = Attempt(n=1, kind="main")
    classify(attempt, turn)
    assert (attempt.outcome, attempt.error, attempt.stop_reason, attempt.model) == (
        outcome,
        error,
        turn.stop_reason,
        "m/one",
    )
    assert attempt.usage == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cost": 0.5,
        "currency": "USD",
        "source": "turn",  # the turn's total, as ACP defines PromptResponse.usage
    }


def test_classify_a_turn_that_raised() -> None:
    partial = result()
    cases = [
        (TurnTimeout("silent", kind="idle", partial=partial), "timeout", False),
        (AgentDied("died", returncode=3, partial=partial), "failed", False),
        (TurnFailed("no credentials", partial=partial), "failed", False),
        (ModelError("refused", models=["a"]), "failed", True),  # not retryable: it ends the run
    ]
    for exc, outcome, fatal in cases:
        attempt = Attempt(n=1, kind="main")
        classify_error(attempt, exc)
        assert (attempt.outcome, attempt.error, attempt.fatal is exc) == (outcome, str(exc), fatal)


def test_a_planning_turn_must_add_tasks(recorder: Recorder) -> None:
    planning = Attempt(n=0, kind="planning")
    check_planning(planning, State())
    assert (planning.outcome, planning.error) == ("failed", PLANNED_NOTHING)
    main = Attempt(n=1, kind="main")
    check_planning(main, State())
    assert main.outcome == "ok"
    ops.task_add(recorder.store, [{"content": "a task"}])
    planned = Attempt(n=0, kind="planning")
    check_planning(planned, recorder.store.load())
    assert planned.outcome == "ok"


# -- recording and committing ----------------------------------------------------------------------------


def test_an_iteration_is_recorded_and_committed_with_its_task_changes(recorder: Recorder, repo: Path) -> None:
    before = recorder.started(0, "planning", [])
    ops.task_add(recorder.store, [{"content": "First"}, {"content": "Second"}])
    attempt = Attempt(n=0, kind="planning", duration=1.5)
    after = recorder.ended(attempt)
    recorder.commit(before, after, attempt)
    [ended] = [e for e in recorder.store.events() if e["type"] == "iteration.ended"]
    assert ended["data"] == {"n": 0, "outcome": "ok", "duration": 1.5}
    assert subjects(repo) == ["iteratr(S): #0 planning: 2 tasks"]
    body = git(repo, "log", "-1", "--format=%B", "iteratr/S")
    assert "- TAS-1 added (remaining): First" in body and "Iteratr-Iteration: 0" in body
    assert git(repo, "status", "--porcelain") == ""
    assert "commit " in printed(recorder)


def test_the_commit_goes_on_the_session_branch_after_the_agent_detached_head(recorder: Recorder, repo: Path) -> None:
    before = recorder.started(0, "main", [])
    git(repo, "switch", "-q", "--detach")
    (repo / "work.txt").write_text("work\n")
    attempt = Attempt(n=0, kind="main", outcome="failed", error="boom")
    recorder.commit(before, recorder.ended(attempt), attempt)
    assert git(repo, "branch", "--show-current") == "iteratr/S"
    assert subjects(repo) == ["iteratr(S): #0 failed: boom"]
    assert "work.txt" in git(repo, "show", "--name-only", "--format=", "iteratr/S")
    assert "the agent left the checkout on a detached HEAD; switching back to iteratr/S" in printed(recorder)


def test_a_failed_commit_is_a_store_error_and_the_events_stay(
    recorder: Recorder, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitlocks, "STALE_AFTER", 1e9)  # a fresh lock: waited for (briefly), never removed
    monkeypatch.setattr(gitlocks, "WAIT", 0.2)
    before = recorder.started(0, "main", [])
    attempt = Attempt(n=0, kind="main")
    after = recorder.ended(attempt)
    (repo / ".git" / "index.lock").touch()
    with pytest.raises(StoreError, match="could not commit iteration #0") as err:
        recorder.commit(before, after, attempt)
    assert err.value.hint == "the events are safe in the log and will be committed by the next run"
    assert recorder.store.load().iterations[0].outcome == "ok"


# -- recovery --------------------------------------------------------------------------------------------


def test_recovery_closes_an_unfinished_iteration_as_interrupted(recorder: Recorder, repo: Path) -> None:
    recorder.store.append(make_event("iteration.started", {"n": 0, "kind": "planning"}, 0))
    recorder.recover()
    it = recorder.store.load().iterations[0]
    assert (it.outcome, it.error, it.duration) == ("interrupted", UNFINISHED, None)  # nobody saw it end
    assert subjects(repo) == [f"iteratr(S): #0 interrupted: {UNFINISHED}"]
    assert "#0 was left unfinished by an earlier run: recording it as interrupted" in printed(recorder)
    recorder.recover()  # nothing left to do: no second end, no second commit
    assert len([e for e in recorder.store.events() if e["type"] == "iteration.ended"]) == 1
    assert len(subjects(repo)) == 1


def test_recovery_commits_an_iteration_that_ended_uncommitted(recorder: Recorder, repo: Path) -> None:
    first = Attempt(n=0, kind="planning")
    before = recorder.started(0, "planning", [])
    ops.task_add(recorder.store, [{"content": "First"}])
    recorder.commit(before, recorder.ended(first), first)
    recorder.started(1, "main", [])
    recorder.ended(Attempt(n=1, kind="main", outcome="timeout", error="silent", duration=2.0))
    recorder.recover()
    assert subjects(repo) == ["iteratr(S): #0 planning: 1 tasks", "iteratr(S): #1 timed out: silent"]
    assert "#1 ended but was not committed by an earlier run: committing it now" in printed(recorder)


def test_end_of_run_commits_what_was_recorded_after_the_last_iteration(recorder: Recorder, repo: Path) -> None:
    attempt = Attempt(n=0, kind="main")
    before = recorder.started(0, "main", [])
    recorder.commit(before, recorder.ended(attempt), attempt)
    recorder.commit_end_of_run()
    assert subjects(repo) == ["iteratr(S): #0 no summary recorded"]  # nothing new: nothing to commit
    recorder.store.append(make_event("note.added", {"id": "NOT-1", "content": "n", "type": "learning"}, 0))
    recorder.commit_end_of_run()
    assert subjects(repo)[1:] == ["iteratr(S): end of run"]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_commit_message_names_the_outcome_tasks_and_messages() -> None:
    before, after = State(), State()
    attempt = Attempt(n=3, kind="main", outcome="failed", error="x" * 80, duration=12.0, delivered=["MSG-1"])
    message = commit_message("S", before, after, attempt)
    subject, _, *rest = message.splitlines()
    assert subject.startswith("iteratr(S): #3 failed: xxx") and len(subject) == 100 and subject.endswith("...")
    assert f"Error: {'x' * 80}" in rest
    assert "User messages delivered: MSG-1" in rest
    assert rest[-2:] == ["Iteratr-Session: S", "Iteratr-Iteration: 3"]
    interrupted = commit_message("S", before, after, Attempt(n=4, kind="main", outcome="interrupted"))
    assert interrupted.splitlines()[0] == "iteratr(S): #4 interrupted"
