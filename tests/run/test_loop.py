"""The build loop through the real CLI: the scripted ACP agent in real subprocesses, real git repos.

The agent (environment, stderr log, models, every fault), Ctrl+C (once and twice), kill -9 and
resume, the loop's stopping rules, the spec (re-read, refused when unusable), and the output.
The git side of a build (branches, commits) is in test_session_git.py; prompts in test_prompt.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest

from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, read_events, run_cli

PROMPT_SEP = "\n=====\n"


def build(cwd: Path, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> str:
    result = run_cli("build", "--headless", *args, cwd=cwd, env={**FAST_ENV, **(env or {})}, expect=expect)
    return result.stdout + result.stderr


def ended(cwd: Path, session: str = "SPEC") -> dict[int, dict[str, Any]]:
    """``iteration.ended`` data by iteration number (the last one wins, as in the reducer)."""
    result: dict[int, dict[str, Any]] = {}
    for event in read_events(cwd, session):
        if event["type"] == "iteration.ended":
            data = cast(dict[str, Any], event["data"])
            result[int(data["n"])] = data
    return result


def started(cwd: Path, session: str = "SPEC") -> list[int]:
    events = read_events(cwd, session)
    return [int(cast(dict[str, Any], e["data"])["n"]) for e in events if e["type"] == "iteration.started"]


def trailers(cwd: Path, ref: str = "iteratr/SPEC") -> list[int]:
    out = git(cwd, "log", "--reverse", "--format=%(trailers:key=Iteratr-Iteration,valueonly,separator=)", ref)
    return [int(line) for line in out.splitlines() if line.strip()]


def subjects(cwd: Path, ref: str = "iteratr/SPEC") -> list[str]:
    return git(cwd, "log", "--reverse", "--format=%s", f"main..{ref}").splitlines()


def prompts(log: Path) -> list[str]:
    return [p for p in log.read_text(encoding="utf-8").split(PROMPT_SEP) if p.strip()] if log.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll a condition until it holds (a deadline, not a sleep used as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def iteration_started(repo: Path, n: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return n in started(repo)
        except (FileNotFoundError, json.JSONDecodeError):
            return False  # not written yet, or a line being written

    return check


def prompts_taken(state_file: Path, count: int) -> Callable[[], bool]:
    """The scripted agent has taken ``count`` prompts (its ``--state-file`` counts them across restarts)."""

    def check() -> bool:
        try:
            return int(state_file.read_text() or 0) >= count
        except (FileNotFoundError, ValueError):
            return False

    return check


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Background:
    """``iteratr build`` running in the background, its output going to a file we can poll."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out_path = cwd.parent / f"build-{time.monotonic_ns()}.out"
        self._out: IO[str] = self.out_path.open("w")
        self.proc = subprocess.Popen(
            [*ITERATR_CMD, "build", "--headless", *args],
            cwd=cwd,
            env={**os.environ, **FAST_ENV, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a job in a terminal
        )

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl+C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def output(self) -> str:
        return self.out_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    runs: list[Background] = []

    def start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Background:
        run = Background(cwd, *args, env=env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


# -- the agent ---------------------------------------------------------------------------------------------


def test_agent_command_line_and_environment(spec_repo: Path, tmp_path: Path) -> None:
    template = tmp_path / "env.template"
    template.write_text("ITERATR_SESSION ITERATR_ITERATION ITERATR_DATA_DIR ITERATR_BIN FROM_ENV_WRAPPER\n")
    script = shlex.split(fake_agent("follow", "env", state_file=tmp_path / "state"))
    agent = shlex.join(["env", "FROM_ENV_WRAPPER=hello there", *script])  # any command line, split like a shell
    out = build(spec_repo, "--agent", agent, "-t", str(template), "-i", "2", expect=3)

    values = dict(re.findall(r"^  (ITERATR_\w+|FROM_ENV_WRAPPER)=(.*)$", out, re.MULTILINE))
    assert values["ITERATR_SESSION"] == "SPEC"
    assert values["ITERATR_DATA_DIR"] == str(spec_repo / ".iteratr")
    assert values["FROM_ENV_WRAPPER"] == "hello there"
    # One agent process per run: its environment is the one it started with, at the run's first iteration.
    assert values["ITERATR_ITERATION"] == "0"
    # ITERATR_BIN runs this iteratr: `$ITERATR_BIN tool ...` works from the agent's shell without flags.
    tool = subprocess.run(
        [*shlex.split(values["ITERATR_BIN"]), "tool", "task-list", "--json"],
        cwd=spec_repo,
        env={**os.environ, "ITERATR_SESSION": "SPEC", "ITERATR_DATA_DIR": values["ITERATR_DATA_DIR"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert [t["content"] for t in json.loads(tool.stdout)] == ["First task", "Second task", "Third task"]


def test_agent_from_the_environment_variable(spec_repo: Path) -> None:
    out = build(spec_repo, "-i", "1", expect=3, env={"ITERATR_AGENT": fake_agent("follow")})
    assert "agent: iteratr-scripted-agent" in out
    assert ended(spec_repo)[0]["outcome"] == "ok"


def test_model_is_set_or_the_default_reported(spec_repo: Path) -> None:
    out = build(
        spec_repo, "--agent", fake_agent("follow", models="model-a,model-b"), "-m", "model-b", "-i", "1", expect=3
    )
    assert re.search(r"^model: model-b$", out, re.MULTILINE), out
    assert ended(spec_repo)[0]["model"] == "model-b"

    out = build(spec_repo, "--agent", fake_agent("follow", models="model-a,model-b"), "-i", "1", expect=3)
    assert "model: model-a (the agent's default)" in out


def test_refused_model_stops_with_the_models_offered(spec_repo: Path) -> None:
    out = build(spec_repo, "--agent", fake_agent("follow", models="model-a,model-b"), "-m", "nope", expect=2)
    assert "nope" in out
    assert "model-a" in out and "model-b" in out
    assert "retrying" not in out  # not retryable


def test_crash_restarts_the_agent_and_its_stderr_is_logged(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "crash", "follow", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, expect=0)
    results = ended(spec_repo)
    assert results[1]["outcome"] == "failed"
    assert "exited with status 3" in results[1]["error"]
    assert [results[n]["outcome"] for n in (2, 3, 4)] == ["ok", "ok", "ok"]  # a new agent process did the work
    assert "retrying in 0s (failure 1 of 3)" in out
    log = (spec_repo / ".iteratr" / "SPEC" / "agent.log").read_text()
    assert "scripted agent: crashing on purpose" in log
    assert log.count("starting ") >= 2  # started again after the crash
    assert subjects(spec_repo)[1].startswith("iteratr(SPEC): #1 failed: ")
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]


def test_hung_turns_are_cancelled_or_killed_and_count_as_failed(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "hang", "hang-hard", "ok", state_file=tmp_path / "state")
    env = {"ITERATR_IDLE_TIMEOUT": "1", "ITERATR_ITERATION_TIMEOUT": "30"}
    out = build(spec_repo, "--agent", agent, "-i", "4", expect=3, env=env)
    results = ended(spec_repo)
    assert results[1]["error"] == "agent was silent for 1 s (idle_timeout); turn cancelled"
    assert results[1]["outcome"] == "timeout"  # `hang` honours session/cancel
    assert results[2]["outcome"] == "timeout"  # `hang-hard` ignores it and is killed with its process group
    assert results[3]["outcome"] == "ok"  # on a fresh agent
    assert "retrying in 0s (failure 2 of 3)" in out
    subject = subjects(spec_repo)
    assert subject[1].startswith("iteratr(SPEC): #1 timed out: ")
    assert subject[2].startswith("iteratr(SPEC): #2 timed out: ")
    log = (spec_repo / ".iteratr" / "SPEC" / "agent.log").read_text()
    child = int(re.findall(r"child pid (\d+)", log)[-1])
    wait_for(lambda: not pid_alive(child), f"the hung agent's child {child} to be killed", timeout=10)


def test_iteration_timeout_cancels_a_turn_that_is_not_idle(spec_repo: Path) -> None:
    env = {"ITERATR_IDLE_TIMEOUT": "60", "ITERATR_ITERATION_TIMEOUT": "1"}
    out = build(spec_repo, "--agent", fake_agent("hang"), "-i", "1", expect=3, env=env)
    result = ended(spec_repo)[0]
    assert result["outcome"] == "timeout"
    assert result["error"] == "turn ran past 1 s (iteration_timeout); turn cancelled"
    assert "=== #0 timeout" in out
    assert subjects(spec_repo) == ["iteratr(SPEC): #0 timed out: turn ran past 1 s (iteration_timeout); turn cancelled"]


def test_empty_turn_stop_reasons_and_a_one_megabyte_line(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "empty", "max_tokens", "refusal", "bigline", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, "-i", "5", expect=3, env={"ITERATR_MAX_FAILURES": "4"})
    results = ended(spec_repo)
    assert results[1]["outcome"] == "failed"
    assert "credentials" in results[1]["error"] and "model" in results[1]["error"]
    assert results[2]["outcome"] == "failed" and results[2]["stop_reason"] == "max_tokens"
    assert "max_tokens" in results[2]["error"] and "token limit" in results[2]["error"]
    assert results[3]["outcome"] == "failed" and results[3]["stop_reason"] == "refusal"
    assert "refused" in results[3]["error"]
    assert results[4]["outcome"] == "ok"  # a 1 MiB message line is fine
    assert "  <" + "x" * (1024 * 1024 - 2) + ">\n" in out
    assert "retrying in 0s (failure 3 of" in out


def test_failure_limit_stops_the_run(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "empty", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, expect=1, env={"ITERATR_MAX_FAILURES": "2"})
    assert "stopped: 2 failed iteration(s) in a row (max_failures); last: the agent ended its turn" in out
    assert started(spec_repo) == [0, 1, 2]
    assert [ended(spec_repo)[n]["outcome"] for n in (1, 2)] == ["failed", "failed"]
    assert trailers(spec_repo) == [0, 1, 2]  # failed iterations are committed too


def test_no_backoff_once_the_iterations_limit_is_reached(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "empty", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, "-i", "2", expect=3, env={"ITERATR_RETRY_DELAY": "3600"})
    assert ended(spec_repo)[1]["outcome"] == "failed"
    assert "retrying" not in out  # it stopped at once instead of waiting an hour to retry
    assert "stopped: 2 iteration(s) run (--iterations), 3 task(s) still open" in out


# -- Ctrl+C, kill -9 and resume ----------------------------------------------------------------------------


def test_ctrl_c_commits_the_turn_as_interrupted_and_exits_130(
    spec_repo: Path, tmp_path: Path, background: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    run = background(spec_repo, "--agent", fake_agent("follow", "hang", "follow", state_file=state))
    wait_for(prompts_taken(state, 2), "the agent to be in its hanging turn")
    run.ctrl_c()
    assert run.wait() == 130, run.output()
    assert "interrupting: cancelling the turn" in run.output()
    assert "stopped: interrupted. History: git log iteratr/SPEC" in run.output()
    assert ended(spec_repo)[1]["outcome"] == "interrupted"
    assert subjects(spec_repo)[-1] == "iteratr(SPEC): #1 interrupted: interrupted by the user"
    assert git(spec_repo, "status", "--porcelain") == ""

    # The state is intact: the next run carries on with the next number.
    build(spec_repo, "--agent", fake_agent("follow", "hang", "follow", state_file=state), expect=0)
    assert started(spec_repo) == [0, 1, 2, 3, 4]
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]


def test_second_ctrl_c_exits_at_once_and_the_next_run_recovers(
    spec_repo: Path, tmp_path: Path, background: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    run = background(spec_repo, "--agent", fake_agent("follow", "hang-hard", "follow", state_file=state))
    wait_for(iteration_started(spec_repo, 1), "iteration #1 to start")
    log = spec_repo / ".iteratr" / "SPEC" / "agent.log"
    wait_for(lambda: "child pid" in log.read_text(), "the hang-hard turn to begin")
    child = int(re.findall(r"child pid (\d+)", log.read_text())[-1])
    run.proc.send_signal(signal.SIGINT)
    wait_for(lambda: "interrupting:" in run.output(), "the first Ctrl+C to be taken")
    run.proc.send_signal(signal.SIGINT)
    assert run.wait() == 130, run.output()
    # It did not wait for the cancel to play out: #1 is still open in the log, and not committed.
    assert 1 not in ended(spec_repo)
    assert trailers(spec_repo) == [0]
    wait_for(lambda: not pid_alive(child), "the agent's process group to be killed", timeout=10)

    out = build(spec_repo, "--agent", fake_agent("follow", "hang-hard", "follow", state_file=state), expect=0)
    assert "#1 was left unfinished by an earlier run: recording it as interrupted" in out
    assert ended(spec_repo)[1]["outcome"] == "interrupted"
    assert started(spec_repo) == [0, 1, 2, 3, 4]
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]
    assert subjects(spec_repo)[1].startswith("iteratr(SPEC): #1 interrupted: found unfinished at start-up")


def test_kill_9_mid_iteration_then_resume(
    spec_repo: Path, tmp_path: Path, background: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    agent = fake_agent("follow", "follow", "hang", "follow", state_file=state)
    run = background(spec_repo, "--agent", agent)
    wait_for(prompts_taken(state, 3), "the agent to be in its hanging turn (#2)")
    run.proc.kill()
    assert run.wait() == -signal.SIGKILL
    assert started(spec_repo) == [0, 1, 2]
    assert 2 not in ended(spec_repo)

    out = build(spec_repo, "--agent", agent, expect=0)
    assert "took over the lock left by a run that is gone" in out
    assert "#2 was left unfinished by an earlier run: recording it as interrupted" in out
    assert started(spec_repo) == [0, 1, 2, 3, 4]
    assert trailers(spec_repo) == [0, 1, 2, 3, 4]
    assert subjects(spec_repo)[2].startswith("iteratr(SPEC): #2 interrupted: ")
    results = ended(spec_repo)
    assert [results[n]["outcome"] for n in range(5)] == ["ok", "ok", "interrupted", "ok", "ok"]
    assert results[2]["duration"] is None  # nobody saw #2 end: its time is unknown, not 0s
    tasks = json.loads(run_cli("tool", "task-list", "--json", "-n", "SPEC", cwd=spec_repo, env=FAST_ENV).stdout)
    assert [t["status"] for t in tasks] == ["completed"] * 3


def test_an_iteration_left_uncommitted_gets_its_own_commit_next_run(spec_repo: Path) -> None:
    # A post_iteration hook that takes git's index lock makes iteration #1's commit fail, as a kill -9
    # between the end of an iteration and its commit would leave it.
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  post_iteration:\n"
        "    - command: 'if [ \"$ITERATR_ITERATION\" = 1 ]; then touch .git/index.lock; fi'\n"
    )
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1)
    assert "could not commit iteration #1" in out
    assert trailers(spec_repo) == [0]
    (spec_repo / ".git" / "index.lock").unlink()

    out = build(spec_repo, "--agent", fake_agent("follow"), expect=0)
    assert "#1 ended but was not committed by an earlier run: committing it now" in out
    assert started(spec_repo) == [0, 1, 2, 3]
    assert trailers(spec_repo) == [0, 1, 2, 3]
    assert subjects(spec_repo)[1] == "iteratr(SPEC): #1 Completed TAS-1: First task"
    assert "work/first-task.txt" in git(spec_repo, "show", "--name-only", "--format=", "iteratr/SPEC~2")


# -- the loop ----------------------------------------------------------------------------------------------


def test_planning_then_main_prompts_with_spec_and_extra_instructions(spec_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "prompts.log"
    build(
        spec_repo,
        "--agent",
        fake_agent("follow"),
        "-e",
        "Use tabs, not spaces.",
        "-i",
        "2",
        expect=3,
        env={"FAKE_AGENT_PROMPT_LOG": str(log)},
    )
    planning, main = prompts(log)
    assert "PLANNING ITERATION" in planning
    assert "- [ ] Second task" in planning  # the spec
    assert "PLANNING" not in main
    assert "- [ ] Second task" in main
    assert "Use tabs, not spaces." in planning and "Use tabs, not spaces." in main
    assert ended(spec_repo)[0]["outcome"] == "ok"


def test_iterations_limit_then_complete_then_nothing_to_do(spec_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "prompts.log"
    env = {"FAKE_AGENT_PROMPT_LOG": str(log)}
    out = build(spec_repo, "--agent", fake_agent("follow"), "-i", "2", expect=3, env=env)
    assert "stopped: 2 iteration(s) run (--iterations), 2 task(s) still open" in out
    out = build(spec_repo, "--agent", fake_agent("follow"), "-i", "0", expect=0, env=env)
    assert "stopped: the session is complete (3 tasks)" in out
    assert len(prompts(log)) == 4
    head = git(spec_repo, "rev-parse", "HEAD")

    out = build(spec_repo, "--agent", fake_agent("follow"), expect=0, env=env)
    assert "session SPEC is already complete; nothing to do" in out
    assert "agent: iteratr-scripted-agent" not in out  # never started
    assert len(prompts(log)) == 4
    assert git(spec_repo, "rev-parse", "HEAD") == head


def test_spec_is_reread_every_iteration(spec_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "prompts.log"
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  pre_iteration:\n"
        "    - command: 'echo \"Refinement $ITERATR_ITERATION\" >> specs/SPEC.md'\n"
    )
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "3", expect=3, env={"FAKE_AGENT_PROMPT_LOG": str(log)})
    texts = prompts(log)
    assert len(texts) == 3
    for n, text in enumerate(texts):
        assert f"Refinement {n}\n" in text
        assert f"Refinement {n + 1}" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "spec {path} not found"),
        (b"  \n\n", "spec {path} is empty"),
        (b"# caf\xe9\n- [ ] x\n", "spec {path} is not UTF-8 text (bad byte at offset 5)"),
    ],
)
def test_unusable_spec_is_refused_before_anything_starts(repo: Path, content: bytes | None, message: str) -> None:
    spec = repo / "specs" / "SPEC.md"
    spec.parent.mkdir()
    if content is not None:
        spec.write_bytes(content)
    out = build(repo, "--spec", "specs/SPEC.md", "--agent", fake_agent("follow"), expect=2)
    assert message.format(path=spec) in out
    assert not (repo / ".iteratr").exists()
    assert git(repo, "branch", "--show-current") == "main"


def test_spec_that_becomes_unusable_mid_run_stops_with_exit_2(spec_repo: Path) -> None:
    (spec_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  pre_iteration:\n"
        "    - command: 'if [ \"$ITERATR_ITERATION\" = 1 ]; then : > specs/SPEC.md; fi'\n"
    )
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=2)
    assert "is empty" in out
    assert started(spec_repo) == [0]
    assert trailers(spec_repo) == [0]


# -- output ------------------------------------------------------------------------------------------------


def test_output_lines(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "chatty", "usage", "permission", "follow", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, "-i", "5", expect=3)
    assert "\x1b" not in out  # not a terminal: no colour
    lines = out.splitlines()
    assert "=== #0 planning" in lines
    assert "=== #1 | TAS-1: First task" in lines  # header: number and the task up next
    assert "  all done" in lines  # agent text, joined into lines
    assert "  [tool] ls -la -> completed" in lines  # one line per tool call, with its final status
    assert "  [tool] false -> failed" in lines
    assert sum(1 for line in lines if "[tool] ls -la" in line) == 1
    assert any(re.fullmatch(r"=== #1 ok \| \d+\.\ds \| tasks 0/3 done", line) for line in lines), out
    assert any(
        re.fullmatch(r"=== #2 ok \| \d+\.\ds \| tasks 0/3 done \| 1,200 tokens \| cost 0\.0123 USD", line)
        for line in lines
    ), out
    assert "  [permission] touch permission.txt: allow_always" in lines  # approved, and logged
    assert "  permission: allow-always" in lines
    assert any(re.fullmatch(r"=== #4 ok \| \d+\.\ds \| tasks 1/3 done", line) for line in lines), out
    assert (
        lines[-1] == "stopped: 5 iteration(s) run (--iterations), 2 task(s) still open. History: git log iteratr/SPEC"
    )


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_only_on_a_terminal_without_no_color(spec_repo: Path, no_color: bool) -> None:
    import pexpect

    env = {**os.environ, **FAST_ENV, "TERM": "xterm"}
    if no_color:
        env["NO_COLOR"] = "1"
    child = pexpect.spawn(
        ITERATR_CMD[0],
        [*ITERATR_CMD[1:], "build", "--headless", "--agent", fake_agent("ok"), "-i", "1"],
        cwd=str(spec_repo),
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    out = child.before or ""
    assert child.exitstatus == 3, out
    assert "=== #0 planning" in out
    assert ("\x1b[" in out) is not no_color


def test_printer_joins_streamed_chunks_into_lines() -> None:
    import io

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
    import io

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
