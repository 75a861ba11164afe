"""The build loop in-process: ``BuildLoop`` with the fake agent (tests/fakes.py), a real temp git repo and store.

The loop's stopping rules, retries and backoff, classifying turns (empty turns, stop reasons, a
refused model, a planning turn that plans nothing), the spec (re-read, unusable mid-run), Ctrl+C and
SIGTERM, recovery of an uncommitted iteration, and the output. What needs a whole process (the real
agent over ACP, signals from outside, kill -9) is in test_build_e2e.py; recording and commit
messages are unit-tested in test_record.py; prompts in test_prompt.py.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from iteratr import gitlocks
from iteratr.agent.events import TurnResult
from iteratr.errors import UsageError
from iteratr.run.attempt import PLANNED_NOTHING
from tests.conftest import git
from tests.fakes import FakeAgent, Script
from tests.run.harness import run_loop


def trailers(cwd: Path, ref: str = "iteratr/SPEC") -> list[int]:
    out = git(cwd, "log", "--reverse", "--format=%(trailers:key=Iteratr-Iteration,valueonly,separator=)", ref)
    return [int(line) for line in out.splitlines() if line.strip()]


def subjects(cwd: Path, ref: str = "iteratr/SPEC") -> list[str]:
    return git(cwd, "log", "--reverse", "--format=%s", f"main..{ref}").splitlines()


# -- the agent ---------------------------------------------------------------------------------------------


def test_the_agent_is_launched_with_the_session_environment(spec_repo: Path) -> None:
    script = Script("follow")
    run_loop(spec_repo, script, iterations=2, expect=3)
    [launch] = script.launches  # one agent for the whole run
    assert launch.cwd == spec_repo and launch.stderr_log == spec_repo / ".iteratr" / "SPEC" / "agent.log"
    assert launch.env["ITERATR_SESSION"] == "SPEC"
    assert launch.env["ITERATR_DATA_DIR"] == str(spec_repo / ".iteratr")
    assert launch.env["ITERATR_ITERATION"] == "0"  # the iteration the run started at
    assert launch.env["HOME"] == os.environ["HOME"]  # the whole environment
    assert script.agents[0].closed


def test_model_is_set_or_the_default_reported(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", models=["model-a", "model-b"]), model="model-b", iterations=1, expect=3)
    assert re.search(r"^model: model-b$", run.output, re.MULTILINE), run.output
    assert run.ended()[0]["model"] == "model-b"

    run = run_loop(spec_repo, Script("follow", models=["model-a", "model-b"]), iterations=1, expect=3)
    assert "model: model-a (the agent's default)" in run.output


def test_refused_model_commits_the_iteration_as_failed_and_stops_with_exit_2(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", models=["model-a", "model-b"]), model="nope", expect=2)
    assert "nope" in run.output
    assert "model-a" in run.output and "model-b" in run.output
    assert "retrying" not in run.output  # not retryable
    assert run.ended()[0]["outcome"] == "failed"
    assert trailers(spec_repo) == [0]


def test_a_crashed_agent_is_restarted_by_the_next_turn(spec_repo: Path) -> None:
    script = Script("follow", "crash", "follow")
    run = run_loop(spec_repo, script)
    results = run.ended()
    assert results[1]["outcome"] == "failed" and "exited with status 3" in results[1]["error"]
    assert [results[n]["outcome"] for n in (2, 3, 4)] == ["ok", "ok", "ok"]
    assert script.starts == 2
    assert "retrying in 0s (failure 1 of 3)" in run.output
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]


def test_timeouts_count_as_timed_out_and_are_retried(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", "hang", "ok"), idle_timeout=0.05, iterations=3, expect=3)
    results = run.ended()
    assert results[1]["outcome"] == "timeout"
    assert results[1]["error"] == "agent was silent for 0.05 s (idle_timeout); turn cancelled"
    assert results[2]["outcome"] == "ok"
    assert subjects(spec_repo)[1].startswith("iteratr(SPEC): #1 timed out: ")
    assert "=== #1 timeout" in run.output


def test_an_error_answer_fails_the_iteration_and_the_same_agent_retries(spec_repo: Path) -> None:
    script = Script("follow", "fail", "follow")
    run = run_loop(spec_repo, script, iterations=3, expect=3)
    assert run.ended()[1]["outcome"] == "failed"
    assert run.ended()[1]["error"] == "agent answered with an error: Internal error: no credentials"
    assert run.ended()[2]["outcome"] == "ok"
    assert script.starts == 1  # an error answer is not a dead agent


def test_empty_turn_stop_reasons_and_a_one_megabyte_line(spec_repo: Path) -> None:
    script = Script("follow", "empty", "max_tokens", "refusal", "bigline")
    run = run_loop(spec_repo, script, iterations=5, max_failures=4, expect=3)
    results = run.ended()
    assert results[1]["outcome"] == "failed"
    assert "credentials" in results[1]["error"] and "model" in results[1]["error"]
    assert results[2]["outcome"] == "failed" and results[2]["stop_reason"] == "max_tokens"
    assert "max_tokens" in results[2]["error"] and "token limit" in results[2]["error"]
    assert results[3]["outcome"] == "failed" and results[3]["stop_reason"] == "refusal"
    assert "refused" in results[3]["error"]
    assert results[4]["outcome"] == "ok"  # a 1 MiB message line is fine
    # ... and shown cut to one line's length (issue 12: one printed line is capped; agent.log has it whole)
    assert "  <" + "x" * 1999 + f" … ({1024 * 1024 - 2000} more characters)\n" in run.output
    assert "retrying in 0s (failure 3 of" in run.output


# -- retries and stopping ----------------------------------------------------------------------------------


def test_failure_limit_stops_the_run(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", "empty"), max_failures=2, expect=1)
    assert "stopped: 2 failed iteration(s) in a row (max_failures); last: the agent ended its turn" in run.output
    assert run.started() == [0, 1, 2]
    assert [run.ended()[n]["outcome"] for n in (1, 2)] == ["failed", "failed"]
    assert trailers(spec_repo) == [0, 1, 2]  # failed iterations are committed too


def test_no_backoff_once_the_iterations_limit_is_reached(spec_repo: Path) -> None:
    # -i 1: planning does not count, so #1 (the one main iteration) fails and the run stops without a retry.
    run = run_loop(spec_repo, Script("follow", "empty"), iterations=1, retry_delay=3600.0, expect=3)
    assert run.ended()[1]["outcome"] == "failed"
    assert "retrying" not in run.output  # it stopped at once instead of waiting an hour to retry
    assert "stopped: 1 iteration(s) run (--iterations), 3 task(s) still open" in run.output


def test_a_planning_turn_that_adds_no_tasks_ends_once_as_failed(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("ok"), max_failures=2, expect=1)
    ended = run.events("iteration.ended")
    assert [e["data"]["n"] for e in ended] == [0, 1], "exactly one iteration.ended per iteration"
    assert all(e["data"]["outcome"] == "failed" and e["data"]["error"] == PLANNED_NOTHING for e in ended)
    assert subjects(spec_repo)[0] == f"iteratr(SPEC): #0 failed: {PLANNED_NOTHING}"


def test_every_iteration_has_exactly_one_end(spec_repo: Path) -> None:
    script = Script("follow", "empty", "max_tokens", "crash", "hang", "follow")
    run = run_loop(spec_repo, script, idle_timeout=0.05, max_failures=5)
    numbers = [e["data"]["n"] for e in run.events("iteration.ended")]
    assert numbers == sorted(set(numbers)) == run.started()


def test_iterations_limit_then_complete_then_nothing_to_do(spec_repo: Path) -> None:
    script = Script("follow")
    run = run_loop(spec_repo, script, iterations=1, expect=3)  # planning does not count against -i
    assert "stopped: 1 iteration(s) run (--iterations), 2 task(s) still open" in run.output
    run = run_loop(spec_repo, script, iterations=0, expect=0)
    assert "stopped: the session is complete (3 tasks)" in run.output
    assert len(script.prompts) == 4
    head = git(spec_repo, "rev-parse", "HEAD")

    run = run_loop(spec_repo, script, expect=0)
    assert "session SPEC is already complete; nothing to do" in run.output
    assert "agent: " not in run.output and len(script.launches) == 2  # never started
    assert len(script.prompts) == 4
    assert git(spec_repo, "rev-parse", "HEAD") == head


# -- prompts and the spec ----------------------------------------------------------------------------------


def test_planning_then_main_prompts_with_spec_and_extra_instructions(spec_repo: Path) -> None:
    script = Script("follow")
    run = run_loop(spec_repo, script, extra="Use tabs, not spaces.", iterations=1, expect=3)
    planning, main = script.prompts
    assert "PLANNING ITERATION" in planning
    assert "- [ ] Second task" in planning  # the spec
    assert "PLANNING" not in main
    assert "- [ ] Second task" in main
    assert "Use tabs, not spaces." in planning and "Use tabs, not spaces." in main
    assert run.ended()[0]["outcome"] == "ok"


def test_spec_is_reread_every_iteration(spec_repo: Path) -> None:
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  pre_iteration:\n"
        "    - command: 'echo \"Refinement $ITERATR_ITERATION\" >> specs/SPEC.md'\n"
    )
    script = Script("follow")
    run_loop(spec_repo, script, iterations=2, expect=3)
    assert len(script.prompts) == 3
    for n, text in enumerate(script.prompts):
        assert f"Refinement {n}\n" in text
        assert f"Refinement {n + 1}" not in text


def test_spec_that_becomes_unusable_mid_run_stops_with_exit_2(spec_repo: Path) -> None:
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  pre_iteration:\n"
        "    - command: 'if [ \"$ITERATR_ITERATION\" = 1 ]; then : > specs/SPEC.md; fi'\n"
    )
    run = run_loop(spec_repo, Script("follow"), expect=2)
    assert "is empty" in run.output
    assert run.started() == [0]
    assert trailers(spec_repo) == [0]


# -- interruption and recovery -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "the user"), (signal.SIGTERM, "SIGTERM")])
def test_a_signal_mid_turn_cancels_it_and_commits_it_as_interrupted(
    spec_repo: Path, sig: signal.Signals, reason: str
) -> None:
    async def signalled(agent: FakeAgent, prompt: str) -> TurnResult:
        os.kill(os.getpid(), sig)  # a real signal, to the loop's own handler (this is the main thread)
        return await agent.wait_for_cancel()  # the loop cancels the turn

    run = run_loop(spec_repo, Script("follow", signalled, "follow"), expect=130)
    assert "interrupting: cancelling the turn" in run.output
    assert "stopped: interrupted. History: git log iteratr/SPEC" in run.output
    assert run.ended()[1]["outcome"] == "interrupted"
    assert subjects(spec_repo)[-1] == f"iteratr(SPEC): #1 interrupted: interrupted by {reason}"
    assert git(spec_repo, "status", "--porcelain") == ""

    # The state is intact: the next run carries on with the next number.
    run = run_loop(spec_repo, Script("follow"), expect=0)
    assert run.started() == [0, 1, 2, 3, 4]
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]


def test_an_iteration_left_uncommitted_gets_its_own_commit_next_run(
    spec_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A post_iteration hook that takes git's index lock makes iteration #1's commit fail, as a kill -9
    # between the end of an iteration and its commit would leave it. (The lock counts as fresh, so it is
    # waited for, briefly, rather than removed as stale: tests/run/test_faults.py covers the removal.)
    monkeypatch.setattr(gitlocks, "STALE_AFTER", 1e9)
    monkeypatch.setattr(gitlocks, "WAIT", 0.2)
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  post_iteration:\n"
        "    - command: 'if [ \"$ITERATR_ITERATION\" = 1 ]; then touch .git/index.lock; fi'\n"
    )
    run = run_loop(spec_repo, Script("follow"), expect=1)
    assert "could not commit iteration #1" in run.output
    assert trailers(spec_repo) == [0]
    (spec_repo / ".git" / "index.lock").unlink()

    run = run_loop(spec_repo, Script("follow"), expect=0)
    assert "#1 ended but was not committed by an earlier run: committing it now" in run.output
    assert run.started() == [0, 1, 2, 3]
    assert trailers(spec_repo) == [0, 1, 2, 3]
    assert subjects(spec_repo)[1] == "iteratr(SPEC): #1 Completed TAS-1: First task"
    assert "work/first-task.txt" in git(spec_repo, "show", "--name-only", "--format=", "iteratr/SPEC~2")


def test_the_agent_committing_or_detaching_head_still_commits_on_the_session_branch(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", "commit", "detach"), iterations=2, expect=3)
    assert "the agent left the checkout on a detached HEAD; switching back to iteratr/SPEC" in run.output
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"
    assert trailers(spec_repo) == [0, 1, 2]
    assert "detached.txt" in git(spec_repo, "show", "--name-only", "--format=", "iteratr/SPEC")


# -- output ------------------------------------------------------------------------------------------------


def test_output_lines(spec_repo: Path) -> None:
    script = Script("follow", "chatty", "usage", "permission", "follow")
    out = run_loop(spec_repo, script, iterations=4, expect=3).output
    assert "\x1b" not in out  # not a terminal: no colour
    lines = out.splitlines()
    assert "=== #0 planning" in lines
    assert "=== #1 | TAS-1: First task" in lines  # header: number and the task up next
    assert "  all done" in lines  # agent text, joined into lines
    assert "  [tool] ls -la -> ok" in lines  # one line per tool call, with whether it succeeded
    assert "  [tool] false -> failed" in lines
    assert sum(1 for line in lines if "[tool] ls -la" in line) == 1
    clock = r"\d\d:\d\d:\d\d"  # each footer carries the clock time it ended
    assert any(re.fullmatch(rf"=== #1 ok \| {clock} \| \d+\.\ds \| tasks 0/3 done", line) for line in lines), out
    assert any(
        re.fullmatch(rf"=== #2 ok \| {clock} \| \d+\.\ds \| tasks 0/3 done \| tokens: 1,200 \| cost 0\.0123 USD", line)
        for line in lines
    ), out
    assert "  [permission] touch permission.txt: allowed once: default policy" in lines  # approved, and logged
    assert "  permission: allow-once" in lines
    assert any(re.fullmatch(rf"=== #4 ok \| {clock} \| \d+\.\ds \| tasks 1/3 done", line) for line in lines), out
    assert re.fullmatch(  # the run's totals: iterations by outcome, tokens, cost and wall time
        r"stopped: 4 iteration\(s\) run \(--iterations\), 2 task\(s\) still open\. History: git log iteratr/SPEC"
        r" \(this run: 5 iteration\(s\), 1,200 tokens, cost 0\.0123 USD; by outcome: 5 ok; wall time \d+\.\ds\)",
        lines[-1],
    ), lines[-1]


def test_a_failing_tool_call_shows_its_exit_status_and_the_end_of_its_output(spec_repo: Path) -> None:
    # As opencode reports a failing command: status "completed", exit status 3 in its rawOutput.
    out = run_loop(spec_repo, Script("follow", "failing-tool", "ok"), iterations=2, expect=3).output
    lines = out.splitlines()
    at = lines.index("  [tool] sh run-tests.sh -> failed (exit 3)")
    assert lines[at + 1 : at + 6] == [f"      | test {i} failed" for i in range(4, 9)]  # its last 5 lines
    assert "  [tool] iteratr tool task-batch-add -> ok" in lines
    assert "stopped:" in lines[-1] and "by outcome: 3 ok" in lines[-1]


def test_a_failed_tool_calls_output_is_capped() -> None:
    from iteratr.run.screen import output_tail

    tail = output_tail("\n".join("x" * 100 for _ in range(20)))
    assert len(tail) <= 5 and sum(len(line) for line in tail) <= 301
    assert output_tail("a\n\n  \nb\n") == ["a", "b"]


def test_a_retry_says_so_in_its_headline(spec_repo: Path) -> None:
    out = run_loop(spec_repo, Script("follow", "empty", "follow"), iterations=2, expect=3).output
    assert "=== #1 | TAS-1: First task" in out.splitlines()
    assert "=== #2 (retry) | TAS-1: First task" in out.splitlines()


def test_printer_joins_streamed_chunks_into_lines() -> None:
    from iteratr.output import Printer

    stream = io.StringIO()
    printer = Printer(stream)
    for chunk in ("Hel", "lo wor", "ld\nsecond ", "line\n\nthi", "rd"):
        printer.agent_text(chunk)
    printer.line("  [tool] ls -> completed")  # a tool line ends the partial agent line first
    printer.agent_text("after\n")
    assert stream.getvalue() == "  Hello world\n  second line\n  third\n  [tool] ls -> completed\n  after\n"


@pytest.mark.parametrize(
    ("tty", "env", "coloured"),
    [(True, {}, True), (True, {"NO_COLOR": "1"}, False), (True, {"TERM": "dumb"}, False), (False, {}, False)],
)
def test_printer_colour_rules(monkeypatch: pytest.MonkeyPatch, tty: bool, env: dict[str, str], coloured: bool) -> None:
    from iteratr.output import Printer

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = Stream()
    Printer(stream).line("=== #1 ok", "ok")
    assert ("\x1b[" in stream.getvalue()) is coloured
    assert "=== #1 ok" in stream.getvalue()


def test_timestamps_prefix_every_printed_line_and_prompts_are_kept_bounded(spec_repo: Path) -> None:
    from iteratr.output import Printer
    from iteratr.run import prompt_archive

    stream = io.StringIO()
    printer = Printer(stream, timestamps=True)
    printer.line("hello")
    printer.agent_text("agent says\n")
    printer.flush_agent()
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in stream.getvalue().splitlines()), stream.getvalue()

    run = run_loop(spec_repo, Script("follow"), keep_prompts=2, expect=0)
    prompts = run.session_dir / "prompts"
    assert prompt_archive.numbers(run.session_dir) == [2, 3]  # the last 2 of #0..#3
    assert oct((prompts / "3.md").stat().st_mode & 0o777) == "0o600"
    assert prompt_archive.show(run.session_dir) == (3, run.script.prompts[-1])
    assert prompt_archive.show(run.session_dir, 2)[1] == run.script.prompts[-2]
    with pytest.raises(UsageError) as gone:  # one sentence, its hint in one pair of parentheses
        prompt_archive.show(run.session_dir, 99)
    assert str(gone.value) == (
        "no prompt of iteration #99 is kept; kept: #2, #3 "
        "(a build keeps only its last prompts, as many as config key keep_prompts says)"
    )
    git_files = subprocess.run(
        ["git", "log", "--all", "--name-only", "--format="], cwd=spec_repo, capture_output=True, text=True, check=True
    ).stdout
    assert "prompts/" not in git_files  # never committed


def test_a_failed_turn_names_its_model_and_a_planning_retry_says_so(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("empty", "follow", models=["model-a"]), iterations=1, expect=3)
    lines = run.output.splitlines()
    assert "=== #0 planning" in lines and "=== #1 planning (retry)" in lines
    at = next(i for i, line in enumerate(lines) if line.startswith("=== #0 failed"))
    assert lines[at + 1].endswith("(model model-a)"), lines[at + 1]  # which model failed
