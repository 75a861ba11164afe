"""The guard rails in the loop, in-process with the fake agent: derived completion, stalls, blocked tasks, budgets.

Each misbehaviour of issue 11 is scripted (tests/fakes.py): ``spin`` (in_progress and a summary, forever),
``finish_all`` (never calls ``session-complete``), ``forge`` (a hand-written ``session.completed``), ``block``
(every task blocked), and ``disciplined`` (one task per turn, never ``session-complete``). The same ones run
through the real scripted ACP agent in test_build_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from iteratr.agent.events import TurnResult, Usage
from iteratr.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_NEEDS_PERSON, EXIT_OK, EXIT_USAGE
from iteratr.run.guards import Budgets
from tests.conftest import git
from tests.fakes import FakeAgent, Mode, Script
from tests.run.harness import LoopRun, run_loop

FOUR_TASKS = "# Four\n\n- [ ] One\n- [ ] Two\n- [ ] Three\n- [ ] Four\n"


def four_task_repo(repo: Path) -> Path:
    (repo / "specs").mkdir(exist_ok=True)
    (repo / "specs" / "SPEC.md").write_text(FOUR_TASKS)
    git(repo, "add", "specs/SPEC.md")
    git(repo, "commit", "-q", "-m", "four tasks")
    return repo


def progress(run: LoopRun) -> list[bool | None]:
    ended = run.ended()
    return [ended[n].get("progress") for n in sorted(ended)]


# -- completion is derived ---------------------------------------------------------------------------------


def test_a_disciplined_agent_finishes_four_tasks_in_exactly_five_iterations(repo: Path) -> None:
    script = Script("disciplined")
    run = run_loop(four_task_repo(repo), script, stall_limit=3)
    assert run.started() == [0, 1, 2, 3, 4], run.output
    assert len(script.prompts) == 5  # no extra turn to say "complete"
    assert "stopped: the session is complete (4 tasks)" in run.output
    [completed] = run.events("session.completed")  # recorded once, by the loop
    assert completed["data"] == {"by": "iteratr"} and completed["iteration"] == 4
    assert progress(run) == [True] * 5
    assert run.state.complete


def test_an_agent_that_never_calls_session_complete_ends_the_run_at_once(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("finish_all"), stall_limit=3)
    assert run.started() == [0, 1]
    assert "stopped: the session is complete (3 tasks)" in run.output
    assert len(run.events("session.completed")) == 1


def test_a_forged_completion_is_never_honoured(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("forge", "forge", "disciplined"), stall_limit=3)
    # #1 wrote session.completed by hand with every task open: the run went on, and finished the tasks. The line
    # was not written through iteratr tool (iteratr.session.journal), so it is set aside as tampering.
    assert run.started() == [0, 1, 2, 3, 4], run.output
    assert [e["data"] for e in run.events("session.completed")] == [{"by": "iteratr"}]
    assert [e["iteration"] for e in run.events("tamper")] == [1]
    assert "session.completed" in (run.session_dir / "events.set-aside.log").read_text()
    assert run.output.count("the session is complete") == 1

    # A forgery with tasks open, read by the state, the view and the next run: not complete.
    run = run_loop(spec_repo, Script("forge"), expect=EXIT_OK)  # already complete: nothing to do
    log = run.store.events_path
    with open(log, "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "v": 1,
                    "ts": "2026-01-01T00:00:00.000000Z",
                    "type": "task.status",
                    "iteration": 4,
                    "data": {"id": "TAS-3", "status": "remaining"},
                }
            )
            + "\n"
        )
        f.write(
            json.dumps(
                {"v": 1, "ts": "2026-01-01T00:00:00.000000Z", "type": "session.completed", "iteration": 4, "data": {}}
            )
            + "\n"
        )
    state = run.store.load()
    assert state.claimed and not state.complete  # the reducer, hence status and every reader


def test_every_open_task_blocked_stops_for_a_person_with_their_stuck_notes(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("block"), stall_limit=3, expect=EXIT_NEEDS_PERSON)
    assert run.started() == [0, 1]
    for n in (1, 2, 3):
        assert f"  TAS-{n} blocked: " in run.output
        assert f"    stuck: TAS-{n} needs an API key from a person" in run.output
    assert "stopped: needs a person: every open task is blocked (3)" in run.output
    again = run_loop(spec_repo, Script("block"), stall_limit=3, expect=EXIT_NEEDS_PERSON)
    assert again.started() == [0, 1] and "agent: " not in again.output  # no agent started for nothing


# -- progress is measured ----------------------------------------------------------------------------------


def test_an_agent_that_starts_no_task_is_stopped_as_stuck_with_no_task_named(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", "ok"), stall_limit=2, expect=EXIT_NEEDS_PERSON)
    assert progress(run) == [True, False, False]  # planning added the tasks; then no task was ever started
    assert "stopped: needs a person: stuck, 2 iteration(s) without progress" in run.output  # README's second form


def test_a_spinning_agent_is_stopped_as_stuck_and_told_first(spec_repo: Path) -> None:
    script = Script("spin")
    run = run_loop(spec_repo, script, stall_limit=3, expect=EXIT_NEEDS_PERSON)
    assert run.started() == [0, 1, 2, 3]
    assert progress(run) == [True, False, False, False]
    assert "stopped: needs a person: stuck on TAS-1 (First task), 3 iteration(s) without progress" in run.output
    assert "No progress lately" not in script.prompts[1]
    assert "The last 1 iteration(s) on TAS-1 made no progress" in script.prompts[2]
    assert "The last 2 iteration(s) on TAS-1 made no progress" in script.prompts[3]
    assert "split the task" in script.prompts[3] and "`blocked` with a `stuck` note" in script.prompts[3]

    # The count is in the log: a restart (cron) does not reset it, and starts no agent.
    again = run_loop(spec_repo, Script("spin"), stall_limit=3, expect=EXIT_NEEDS_PERSON)
    assert again.started() == [0, 1, 2, 3] and "agent: " not in again.output
    # A person acting (here: changing the tasks) gives the agent another try.
    from iteratr.session import ops

    ops.task_add(again.store, [{"content": "a smaller first step"}])
    third = run_loop(spec_repo, Script("spin"), stall_limit=3, expect=EXIT_NEEDS_PERSON)
    assert third.started()[-1] == 4


def test_stall_limit_zero_turns_it_off(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("spin"), stall_limit=0, iterations=5, expect=EXIT_INCOMPLETE)
    assert run.started() == [0, 1, 2, 3, 4, 5]


def test_a_changed_work_tree_is_progress(spec_repo: Path) -> None:
    async def edits(agent: FakeAgent, prompt: str) -> TurnResult:
        if not agent.store.load().tasks:
            return await agent._follow(prompt)
        (agent.cwd / f"file-{len(agent.script.prompts)}.txt").write_text("x\n")
        return agent.result(agent.say("edited a file"))

    run = run_loop(spec_repo, Script(edits), stall_limit=2, iterations=3, expect=EXIT_INCOMPLETE)
    assert progress(run) == [True, True, True, True]


# -- --iterations ------------------------------------------------------------------------------------------


def test_iterations_count_main_iterations_only(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("disciplined"), iterations=1, expect=EXIT_INCOMPLETE)
    assert run.started() == [0, 1]  # planning, and one task
    assert run.state.tasks["TAS-1"].status == "completed"
    run = run_loop(spec_repo, Script("disciplined"), iterations=2, expect=EXIT_OK)  # -i reached, nothing open
    assert "stopped: the session is complete (3 tasks)" in run.output


# -- budgets -----------------------------------------------------------------------------------------------


def costly(tokens: int = 1200, cost: float | None = 0.0123, currency: str | None = "USD") -> Mode:
    """A disciplined agent that reports ``tokens`` and ``cost`` for every turn, planning included."""

    async def mode(agent: FakeAgent, prompt: str) -> TurnResult:
        result = await agent._disciplined(prompt)
        result.usage = Usage(tokens - 200, 200, tokens, cost, currency if cost is not None else None)
        return result

    return mode


def test_a_cost_budget_stops_before_the_next_iteration(repo: Path) -> None:
    run = run_loop(four_task_repo(repo), Script(costly()), budgets=Budgets(max_cost=0.02), expect=EXIT_INCOMPLETE)
    assert run.started() == [0, 1]  # 0.0123, then 0.0246 >= 0.02: #2 never starts
    assert "stopped: budget max_cost (0.02) reached: this run spent 0.0246 USD" in run.output
    assert "(this run: 2 iteration(s), 2,400 tokens, cost 0.0246 USD; by outcome: 2 ok; wall time " in run.output


def test_a_token_budget_stops_before_the_next_iteration(repo: Path) -> None:
    run = run_loop(four_task_repo(repo), Script(costly()), budgets=Budgets(max_tokens=2500), expect=EXIT_INCOMPLETE)
    assert run.started() == [0, 1, 2]
    assert "stopped: budget max_tokens (2500) reached: this run used 3,600 tokens" in run.output


def test_a_session_budget_holds_across_three_runs(repo: Path) -> None:
    four_task_repo(repo)
    budgets = Budgets(session_max_tokens=3000)
    first = run_loop(repo, Script(costly()), budgets=budgets, iterations=1, expect=EXIT_INCOMPLETE)
    assert first.started() == [0, 1]  # 2,400 tokens
    second = run_loop(repo, Script(costly()), budgets=budgets, iterations=1, expect=EXIT_INCOMPLETE)
    assert second.started() == [0, 1, 2]  # 3,600: over, but a budget never cuts a turn
    assert "stopped: budget session_max_tokens (3000) reached: the session used 3,600 tokens" in second.output
    third = run_loop(repo, Script(costly()), budgets=budgets, iterations=1, expect=EXIT_INCOMPLETE)
    assert third.started() == [0, 1, 2]  # restarting does not reset it: no iteration starts
    assert "stopped: budget session_max_tokens (3000) reached: the session used 3,600 tokens" in third.output


def test_a_time_budget_cancels_the_turn_and_commits_it_as_interrupted(spec_repo: Path) -> None:
    run = run_loop(
        spec_repo, Script("follow", "hang"), budgets=Budgets(max_time=0.5), idle_timeout=60, expect=EXIT_INCOMPLETE
    )
    ended = run.ended()
    assert ended[1]["outcome"] == "interrupted" and "budget max_time" in ended[1]["error"]
    assert "stopped: budget max_time (0s) reached" in run.output or "stopped: budget max_time" in run.output
    assert "interrupted" in git(spec_repo, "log", "-1", "--format=%s", "iteratr/SPEC")
    assert run.code != EXIT_INTERRUPTED


def test_a_cost_budget_with_an_agent_that_reports_no_cost_stops_with_exit_2(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script(costly(cost=None)), budgets=Budgets(max_cost=5), expect=EXIT_USAGE)
    assert "the agent reports no cost" in run.output
    assert run.started() == [0]  # judged after its first turn


def test_a_cost_budget_in_another_currency_stops_with_exit_2(spec_repo: Path) -> None:
    budgets = Budgets(max_cost=5, max_cost_currency="EUR")
    run = run_loop(spec_repo, Script(costly()), budgets=budgets, expect=EXIT_USAGE)
    assert "max_cost is in EUR but the agent reports cost in USD" in run.output


def test_a_partial_count_says_so_in_the_footer(spec_repo: Path) -> None:
    async def last_call(agent: FakeAgent, prompt: str) -> TurnResult:
        result = await agent._disciplined(prompt)
        result.usage = Usage(100, 5, 105, None, None, source="last-call")
        return result

    run = run_loop(spec_repo, Script(last_call), iterations=1, expect=EXIT_INCOMPLETE)
    assert "tokens: 105 (last call only, as the agent reports)" in run.output
