"""The end-to-end contract of ``iteratr build``: the real CLI in subprocesses, the scripted ACP agent
(``iteratr.agent.scripted``) over the real protocol, real hooks, real signals and a real git repo.

Fewer and broader than the in-process loop tests (tests/run/test_loop.py, test_hooks_loop.py,
test_inbox_loop.py, which drive ``BuildLoop`` with the fake agent of tests/fakes.py): what only a
whole process shows lives here. The agent's command line and environment, a model the agent refuses
through the protocol, a crash and restart of the agent process, idle and total timeouts ending in
``session/cancel`` then a kill of the process group, Ctrl+C once and twice, SIGTERM, kill -9 and
resume, the checks ``build`` makes before anything starts, colour on a terminal, and ``say`` reaching
a build in a worktree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from iteratr.errors import EXIT_INTERRUPTED, EXIT_USAGE
from iteratr.run.signals import DUPLICATE_WINDOW
from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, read_events, run_cli, wait_for
from tests.run.helpers import (
    HOOKS_FILE,
    Background,
    Hook,
    build,
    marker,
    message_texts,
    read_markers,
    started,
    write_hooks,
)

PROMPT_SEP = "\n=====\n"


def ended(cwd: Path, session: str = "SPEC") -> dict[int, dict[str, Any]]:
    """``iteration.ended`` data by iteration number (the last one wins, as in the reducer)."""
    result: dict[int, dict[str, Any]] = {}
    for event in read_events(cwd, session):
        if event["type"] == "iteration.ended":
            data = cast(dict[str, Any], event["data"])
            result[int(data["n"])] = data
    return result


def trailers(cwd: Path, ref: str = "iteratr/SPEC") -> list[int]:
    out = git(cwd, "log", "--reverse", "--format=%(trailers:key=Iteratr-Iteration,valueonly,separator=)", ref)
    return [int(line) for line in out.splitlines() if line.strip()]


def subjects(cwd: Path, ref: str = "iteratr/SPEC") -> list[str]:
    return git(cwd, "log", "--reverse", "--format=%s", f"main..{ref}").splitlines()


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


# -- hooks ---------------------------------------------------------------------------------------------


def read_prompts(log: Path) -> list[str]:
    if not log.exists():
        return []
    return log.read_text().split("\n=====\n")[:-1]


def timeline(repo: Path) -> list[tuple[Any, ...]]:
    """The event log reduced to what hook ordering is about."""
    out: list[tuple[Any, ...]] = []
    for event in read_events(repo):
        data: Any = event["data"]
        if event["type"] == "iteration.started":
            out.append(("started", data["n"]))
        elif event["type"] == "iteration.ended":
            out.append(("ended", data["n"], data["outcome"]))
        elif event["type"] == "task.status" and data["status"] == "completed":
            out.append(("completed", data["id"]))
        elif event["type"] == "hook.ran":
            if data["hook"] == "on_task_complete":
                out.append(("hook", data["hook"], data["task_id"]))
            elif data["hook"] in ("session_start", "session_end"):
                out.append(("hook", data["hook"]))
            else:
                out.append(("hook", data["hook"], event["iteration"]))
    return out


def env_with(tmp_path: Path, **more: str) -> dict[str, str]:
    return {**FAST_ENV, "FAKE_AGENT_PROMPT_LOG": str(tmp_path / "prompts.log"), **more}


def assert_clean(repo: Path) -> None:
    """Every hook.ran event is committed: a run never ends with a dirty session log (it blocks git switch)."""
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def all_types(markers: Path) -> dict[str, list[Hook]]:
    return {
        "session_start": [{"command": marker(markers, "start") + "; echo START-OUT", "pipe_output": True}],
        "pre_iteration": [
            {"command": marker(markers, "pre {{iteration}}") + "; echo PRE-OUT-{{iteration}}", "pipe_output": True}
        ],
        "post_iteration": [
            {"command": marker(markers, "post {{iteration}}") + "; echo POST-OUT-{{iteration}}", "pipe_output": True}
        ],
        "on_task_complete": [
            {
                "command": marker(markers, "task {{iteration}} {{task_id}}") + "; echo TASK-OUT-{{task_id}}",
                "pipe_output": True,
            }
        ],
        "on_error": [{"command": marker(markers, "error {{iteration}}") + "; echo ERROR-OUT", "pipe_output": True}],
        "session_end": [{"command": marker(markers, "end") + "; echo END-OUT", "pipe_output": True}],
    }


def start_build(repo: Path, agent: str, env: dict[str, str], *args: str, output: Any = None) -> subprocess.Popen[str]:
    """The real CLI in the background; ``output``: a file for stdout and stderr (default: pipes)."""
    return subprocess.Popen(
        [*ITERATR_CMD, "build", "--headless", "--agent", agent, *args],
        cwd=repo,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=output or subprocess.PIPE,
        stderr=subprocess.STDOUT if output else subprocess.PIPE,
        text=True,
    )


def alive(pid: int) -> bool:
    """Running (not a zombie: an orphan may never be reaped by a container's init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def hooks_build(repo: Path, agent: str, *args: str, env: dict[str, str], expect: int | None = 0) -> Any:
    return run_cli("build", "--headless", "--agent", agent, *args, cwd=repo, env=env, expect=expect)


def wait_for_build(condition: Any, what: str, proc: subprocess.Popen[str], deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"build exited {proc.returncode} while waiting for {what}\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"timed out waiting for {what}\n{out}\n{err}")
        time.sleep(0.05)


# -- the inbox --------------------------------------------------------------------------------------------

# Holds the build at pre_iteration / post_iteration of iteration N while $GATES/hold-<type>-N exists,
# until $GATES/go-<type>-N exists; $GATES/at-<type>-N says it is holding.
GATE = (
    'if [ -e "$GATES/hold-{t}-$ITERATR_ITERATION" ]; then touch "$GATES/at-{t}-$ITERATR_ITERATION"; '
    'while [ ! -e "$GATES/go-{t}-$ITERATR_ITERATION" ]; do sleep 0.02; done; fi'
)
HOOKS = (
    "version: 1\nhooks:\n"
    f"  pre_iteration:\n    - command: {json.dumps(GATE.format(t='pre'))}\n      timeout: 120\n"
    f"  post_iteration:\n    - command: {json.dumps(GATE.format(t='post'))}\n      timeout: 120\n"
)
INBOX_DEADLINE = 30.0
NOT_RUNNING = "no build is running, so it will be picked up when the next build starts"


def poll(condition: Callable[[], Any], what: str, build: Build | None = None, timeout: float = INBOX_DEADLINE) -> Any:
    """Poll until ``condition()`` is truthy; fail (with the build's output) at the deadline or if the build ended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if build is not None and build.proc.poll() is not None:
            value = condition()
            if value:
                return value
            pytest.fail(f"the build ended (exit {build.proc.returncode}) before: {what}\n{build.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}\n{build.output() if build else ''}")
        time.sleep(0.02)


def prompts_by_iteration(log: Path) -> dict[int, list[str]]:
    """Iteration number -> the prompts sent for it (a retry sends another)."""
    found: dict[int, list[str]] = {}
    for text in log.read_text().split("\n=====\n")[:-1]:
        match = re.search(r"Iteration: #(\d+)", text)
        assert match, text[:200]
        found.setdefault(int(match[1]), []).append(text)
    return found


def messages_section(prompt: str) -> str:
    """The prompt's user-messages section ("" if it has none)."""
    match = re.search(r"## Messages from the user\n(.*?)(?=\n## )", prompt, re.S)
    return match[1] if match else ""


class Build:
    """A real `iteratr build --headless` in the background; output in a file, gates in ``gates``."""

    def __init__(self, repo: Path, *args: str, env: dict[str, str] | None = None, work_tree: Path | None = None):
        self.repo = repo
        self.work_tree = work_tree or repo
        self.session_dir = self.work_tree / ".iteratr" / "SPEC"
        self.gates = repo.parent / "gates"
        self.gates.mkdir(exist_ok=True)
        self.prompt_log = repo.parent / "prompts.log"
        self.out_path = repo.parent / f"build-{time.monotonic_ns()}.out"
        full_env = {
            **os.environ,
            **FAST_ENV,
            "GATES": str(self.gates),
            "FAKE_AGENT_PROMPT_LOG": str(self.prompt_log),
            **(env or {}),
        }
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*ITERATR_CMD, "build", "--headless", *args],
                cwd=repo,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def hold(self, hook: str, n: int) -> None:
        (self.gates / f"hold-{hook}-{n}").touch()

    def wait_at(self, hook: str, n: int) -> None:
        poll(lambda: (self.gates / f"at-{hook}-{n}").exists(), f"the build holding at {hook} #{n}", self)

    def go(self, hook: str, n: int) -> None:
        (self.gates / f"go-{hook}-{n}").touch()

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait(self, expect: int, timeout: float = 90) -> str:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
            pytest.fail(f"the build did not end in {timeout}s\n{self.output()}")
        out = self.output()
        assert code == expect, f"exit {code}, expected {expect}\n{out}"
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@pytest.fixture
def gated(spec_repo: Path) -> Path:
    """The three-task spec repository with the gate hooks committed."""
    (spec_repo / ".iteratr.hooks.yml").write_text(HOOKS)
    git(spec_repo, "add", ".iteratr.hooks.yml")
    git(spec_repo, "commit", "-q", "-m", "gate hooks")
    return spec_repo


@pytest.fixture
def builds() -> Any:
    """Builds a test starts are killed if the test fails half-way."""
    running: list[Build] = []

    def start(*args: Any, **kwargs: Any) -> Build:
        one = Build(*args, **kwargs)
        running.append(one)
        return one

    yield start
    for one in running:
        one.kill()


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
    # No hooks file means no hooks.
    assert "hooks: none" in out
    assert not [e for e in read_events(spec_repo) if e["type"] == "hook.ran"]


def test_refused_model_stops_with_the_models_offered(spec_repo: Path) -> None:
    out = build(spec_repo, "--agent", fake_agent("follow", models="model-a,model-b"), "-m", "nope", expect=2)
    assert "nope" in out
    assert "model-a" in out and "model-b" in out
    assert "retrying" not in out  # not retryable


def test_crash_restarts_the_agent_and_its_stderr_is_logged(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("follow", "crash", "follow", state_file=tmp_path / "state")
    out = build(spec_repo, expect=0, env={"ITERATR_AGENT": agent})  # the agent from the environment variable
    assert "agent: iteratr-scripted-agent" in out
    results = ended(spec_repo)
    assert results[0]["outcome"] == "ok"
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
    # -i 3: planning does not count; stall_limit off, since these turns make no progress on purpose.
    env = {"ITERATR_IDLE_TIMEOUT": "1", "ITERATR_ITERATION_TIMEOUT": "30", "ITERATR_STALL_LIMIT": "0"}
    out = build(spec_repo, "--agent", agent, "-i", "3", expect=3, env=env)
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
    # A hung planning turn is retried until max_failures (planning does not count against -i): 1 here.
    env = {"ITERATR_IDLE_TIMEOUT": "60", "ITERATR_ITERATION_TIMEOUT": "1", "ITERATR_MAX_FAILURES": "1"}
    out = build(spec_repo, "--agent", fake_agent("hang"), "-i", "1", expect=1, env=env)
    result = ended(spec_repo)[0]
    assert result["outcome"] == "timeout"
    assert result["error"] == "turn ran past 1 s (iteration_timeout); turn cancelled"
    assert "=== #0 timeout" in out
    assert subjects(spec_repo) == ["iteratr(SPEC): #0 timed out: turn ran past 1 s (iteration_timeout); turn cancelled"]


# -- Ctrl+C, SIGTERM, kill -9 and resume ------------------------------------------------------------------


def test_ctrl_c_commits_the_turn_as_interrupted_and_exits_130(
    spec_repo: Path, tmp_path: Path, group_build: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    run = group_build(spec_repo, "--agent", fake_agent("follow", "hang", "follow", state_file=state))
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
    spec_repo: Path, tmp_path: Path, group_build: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    run = group_build(spec_repo, "--agent", fake_agent("follow", "hang-hard", "follow", state_file=state))
    wait_for(iteration_started(spec_repo, 1), "iteration #1 to start")
    log = spec_repo / ".iteratr" / "SPEC" / "agent.log"
    wait_for(lambda: "child pid" in log.read_text(), "the hang-hard turn to begin")
    child = int(re.findall(r"child pid (\d+)", log.read_text())[-1])
    run.proc.send_signal(signal.SIGINT)
    wait_for(lambda: "interrupting:" in run.output(), "the first Ctrl+C to be taken")
    time.sleep(DUPLICATE_WINDOW + 0.2)  # a person's second press: a copy within the window would count once
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
    spec_repo: Path, tmp_path: Path, group_build: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    agent = fake_agent("follow", "follow", "hang", "follow", state_file=state)
    run = group_build(spec_repo, "--agent", agent)
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
    listed = run_cli("tool", "task-list", "--all", "--json", "-n", "SPEC", cwd=spec_repo, env=FAST_ENV).stdout
    assert [t["status"] for t in json.loads(listed)] == ["completed"] * 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_session_end_runs_once_after_ctrl_c_or_sigterm(spec_repo: Path, tmp_path: Path, sig: signal.Signals) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))
    prompts = tmp_path / "prompts.log"
    agent = fake_agent("follow", "hang", state_file=tmp_path / "agent-state")
    proc = start_build(spec_repo, agent, env_with(tmp_path), "-i", "10")
    # The agent has the second prompt: the turn is running.
    wait_for_build(lambda: len(read_prompts(prompts)) >= 2, "the second prompt", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, f"{out}\n{err}"
    assert "hooks: session_start (1), pre_iteration (1), post_iteration (1), session_end (1), " in out
    assert "on_task_complete (1), on_error (1)" in out
    reason = "interrupted by the user" if sig == signal.SIGINT else "interrupted by SIGTERM"
    assert git(spec_repo, "log", "-1", "--format=%s", "iteratr/SPEC~1") == f"iteratr(SPEC): #1 interrupted: {reason}"
    assert read_markers(markers) == ["start", "pre 0", "post 0", "pre 1", "end"]
    assert ("ended", 1, "interrupted") in timeline(spec_repo)
    assert timeline(spec_repo)[-1] == ("hook", "session_end")
    assert_clean(spec_repo)


def test_a_second_ctrl_c_during_a_hook_kills_the_hook(spec_repo: Path, tmp_path: Path) -> None:
    pid_file, out_file = tmp_path / "hook.pid", tmp_path / "build.out"
    command = f"sleep 300 & echo $! > {shlex.quote(str(pid_file))}; wait"
    write_hooks(spec_repo, {"pre_iteration": [{"command": command, "timeout": 300}]})
    with out_file.open("w") as output:
        proc = start_build(spec_repo, fake_agent("follow"), env_with(tmp_path), "-i", "10", output=output)
        try:
            wait_for_build(lambda: pid_file.exists() and pid_file.read_text().strip(), "the hook's pid", proc)
            proc.send_signal(signal.SIGINT)  # the first waits for the hook (it says: Ctrl+C again to quit now)
            wait_for_build(lambda: "interrupting" in out_file.read_text(), "the first Ctrl+C", proc)
            time.sleep(DUPLICATE_WINDOW + 0.2)  # a person's second press, not a wrapper's copy of the first
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == EXIT_INTERRUPTED, out_file.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    pid = int(pid_file.read_text())
    end = time.monotonic() + 10
    while alive(pid) and time.monotonic() < end:  # SIGKILL is delivered asynchronously
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the hook's child {pid} outlived iteratr")


# -- checks before anything starts --------------------------------------------------------------------------


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


INVALID = {
    "bad yaml": ("version: 1\nhooks:\n  pre_iteration:\n    - command: [unclosed\n", 5, "invalid YAML"),
    "unknown type": ("version: 1\nhooks:\n  pre_iteratoin:\n    - command: ls\n", 3, "unknown hook type"),
    "missing command": ("version: 1\nhooks:\n  post_iteration:\n    - timeout: 5\n", 4, "has no 'command'"),
    "timeout 0": ("version: 1\nhooks:\n  pre_iteration:\n    - command: ls\n      timeout: 0\n", 5, "'timeout'"),
    "timeout -1": ("version: 1\nhooks:\n  session_end:\n    - command: ls\n      timeout: -1\n", 5, "'timeout'"),
    "unknown variable": (
        "version: 1\nhooks:\n  on_task_complete:\n    - command: echo {{task_title}}\n",
        4,
        "unknown variable {{task_title}}",
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_an_invalid_hooks_file_stops_the_run_before_any_agent_starts(
    spec_repo: Path, tmp_path: Path, case: str
) -> None:
    text, line, problem = INVALID[case]
    (spec_repo / HOOKS_FILE).write_text(text)
    git(spec_repo, "add", HOOKS_FILE)
    git(spec_repo, "commit", "-q", "-m", "bad hooks")
    head = git(spec_repo, "rev-parse", "HEAD")
    result = hooks_build(spec_repo, fake_agent("follow"), "-i", "10", env=env_with(tmp_path), expect=EXIT_USAGE)

    said = result.stdout + result.stderr
    assert f"{HOOKS_FILE}:{line}: " in said and problem in said
    assert "Traceback" not in said
    assert not (tmp_path / "prompts.log").exists()
    assert not (spec_repo / ".iteratr" / "SPEC" / "agent.log").exists()
    assert git(spec_repo, "rev-parse", "HEAD") == head
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""


# -- output and the inbox ------------------------------------------------------------------------------


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_only_on_a_terminal_without_no_color(spec_repo: Path, no_color: bool) -> None:
    import pexpect

    # `ok` never plans, and a failed planning turn does not count against -i: max_failures ends the run (exit 1).
    env = {**os.environ, **FAST_ENV, "TERM": "xterm", "ITERATR_MAX_FAILURES": "1"}
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
    assert child.exitstatus == 1, out
    assert "=== #0 planning" in out
    assert ("\x1b[" in out) is not no_color


def test_say_from_the_main_checkout_reaches_a_build_running_in_a_worktree(gated: Path, builds: Any) -> None:
    work_tree = gated / ".iteratr" / "worktrees" / "SPEC"
    build = builds(gated, "--worktree", "--agent", fake_agent("follow"), "-i", "2", work_tree=work_tree)
    build.hold("pre", 1)
    build.wait_at("pre", 1)
    said = run_cli("say", "from", "the", "main", "checkout", cwd=gated)
    inbox_path = work_tree / ".iteratr" / "SPEC" / "inbox.md"
    assert f"saved to {inbox_path.relative_to(gated)}" in said.stdout, said
    assert "the running build puts it into the next prompt" in said.stdout
    poll(lambda: message_texts(build.session_dir), "the message recorded in the worktree's log", build)
    build.go("pre", 1)
    out = build.wait(3)
    assert f"inbox: {inbox_path}" in out
    assert out.index(f"inbox: {inbox_path}") < out.index("=== #0"), "the run names its inbox before any iteration"
    assert message_texts(build.session_dir) == ["from the main checkout"]
    assert "from the main checkout" in messages_section(prompts_by_iteration(build.prompt_log)[1][0])
    assert not (gated / ".iteratr" / "SPEC").exists(), "nothing was written into the main checkout's data dir"
