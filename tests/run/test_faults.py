"""A misbehaving agent, in-process: each row of issue 12's first table, and the faults iteratr must survive.

Every test checks the same invariants after the run (``assert_history_is_whole``): no committed event is
lost, iteration numbers are contiguous, every commit iteratr made is reachable from ``iteratr/S``, and the
user's untracked file is untouched and never committed. And each says what it found with a warning.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr.agent.events import TurnResult
from tests.conftest import git
from tests.fakes import FakeAgent, Mode, Script
from tests.run.harness import LoopRun, run_loop

USER_FILE = "my-notes.txt"
USER_TEXT = "the user's own notes, never committed\n"


def sh(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def then_follow(action: Callable[[FakeAgent], None]) -> Mode:
    """Misbehave, then work diligently (the follow mode) in the same turn."""

    async def mode(agent: FakeAgent, prompt: str) -> TurnResult:
        action(agent)
        return await agent._follow(prompt)

    return mode


def follow_then(action: Callable[[FakeAgent], None]) -> Mode:
    async def mode(agent: FakeAgent, prompt: str) -> TurnResult:
        result = await agent._follow(prompt)
        action(agent)
        return result

    return mode


@pytest.fixture
def user_repo(spec_repo: Path) -> Path:
    (spec_repo / USER_FILE).write_text(USER_TEXT)
    return spec_repo


def iteratr_commits(run: LoopRun) -> list[str]:
    return re.findall(r"^    commit ([0-9a-f]{7,}): ", run.output, re.MULTILINE)


def assert_history_is_whole(repo: Path, run: LoopRun) -> None:
    log = run.store.events_path.read_bytes()
    rel = ".iteratr/SPEC/events.jsonl"
    commits = iteratr_commits(run)
    assert commits, run.output
    for sha in commits:
        # every iteratr commit is reachable from the branch ...
        assert subprocess.run(["git", "merge-base", "--is-ancestor", sha, "iteratr/SPEC"], cwd=repo).returncode == 0
        # ... and no event it committed is lost
        committed = subprocess.run(["git", "show", f"{sha}:{rel}"], cwd=repo, capture_output=True).stdout
        assert log.startswith(committed), f"commit {sha} holds events the log lost\n{run.output}"
    started = run.started()
    assert started == list(range(len(started))), f"iteration numbers not contiguous: {started}"
    assert git(repo, "branch", "--show-current") == "iteratr/SPEC"
    assert (repo / USER_FILE).read_text() == USER_TEXT
    assert not git(repo, "log", "--all", "--format=%H", "--", USER_FILE)


# -- the first table: what the agent did during its turn ------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "rm-rf"])
def test_an_emptied_or_deleted_log_is_restored_without_replanning(user_repo: Path, how: str) -> None:
    def damage(agent: FakeAgent) -> None:
        if how == "truncate":
            agent.store.events_path.write_bytes(b"")
        else:
            shutil.rmtree(agent.store.dir)

    # After an emptied log the turn's agent, finding no tasks, plans again: those events reuse committed ids and
    # are set aside. (After `rm -rf`, its tools find no session at all.)
    mode = then_follow(damage) if how == "truncate" else follow_then(damage)
    run = run_loop(user_repo, Script("follow", "follow", mode, "follow"), iterations=4, expect=0)
    assert "the session log was tampered with" in run.output
    tamper = run.events("tamper")
    assert tamper and tamper[0]["data"]["what"] == "log" and tamper[0]["iteration"] == 2
    assert [e["data"]["kind"] for e in run.events("iteration.started")].count("planning") == 1  # no re-planning
    assert sorted(run.state.tasks) == ["TAS-1", "TAS-2", "TAS-3"]
    assert run.state.complete
    assert_history_is_whole(user_repo, run)


def test_a_forged_loop_event_is_set_aside_beside_the_log(user_repo: Path) -> None:
    def forge(agent: FakeAgent) -> None:
        with agent.store.events_path.open("a") as f:
            f.write(
                '{"v": 1, "ts": "x", "type": "iteration.ended", "iteration": 7, "data": {"n": 7, "outcome": "ok"}}\n'
            )
            f.write("not json at all\n")

    run = run_loop(user_repo, Script("follow", follow_then(forge)), iterations=1, expect=3)
    aside = run.session_dir / "events.set-aside.log"
    assert "not json at all" in aside.read_text() and "iteration.ended" in aside.read_text()
    assert 7 not in run.ended()
    assert "set aside" in run.output
    assert git(user_repo, "check-ignore", str(aside.relative_to(user_repo)))
    assert_history_is_whole(user_repo, run)


def test_a_reset_hard_is_undone_and_the_rewound_commits_stay(user_repo: Path) -> None:
    reset = follow_then(lambda agent: sh(agent.cwd, "reset", "--quiet", "--hard", "HEAD~2"))
    # The reset also took the turn's own (uncommitted) events: #2 ends with no summary, and #3 does TAS-2 again.
    run = run_loop(user_repo, Script("follow", "follow", reset, "follow"), iterations=4, expect=0)
    assert "iteratr/SPEC was rewound" in run.output
    assert run.started() == [0, 1, 2, 3, 4]
    assert [e["data"]["what"] for e in run.events("tamper")].count("branch") == 1
    # the work of #1 and #2, which the reset took from the work tree, is back
    assert sorted(p.name for p in (user_repo / "work").iterdir()) == sorted(
        ["first-task.txt", "second-task.txt", "third-task.txt"]
    )
    assert git(user_repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert_history_is_whole(user_repo, run)


def test_an_amended_iteratr_commit_is_kept_under_a_ref_and_replaced_by_the_original(user_repo: Path) -> None:
    def amend(agent: FakeAgent) -> None:
        sh(agent.cwd, "add", "-A", "--", "work")
        sh(agent.cwd, "commit", "--quiet", "--amend", "-m", "the agent rewrote this")

    run = run_loop(user_repo, Script("follow", "follow", follow_then(amend)), iterations=2, expect=3)
    assert "iteratr/SPEC was rewritten" in run.output
    kept = git(user_repo, "for-each-ref", "--format=%(refname)", "refs/iteratr/SPEC/rewritten/")
    assert kept == "refs/iteratr/SPEC/rewritten/2"
    assert git(user_repo, "log", "-1", "--format=%s", kept) == "the agent rewrote this"
    assert "work/second-task.txt" in git(user_repo, "show", "--name-only", "--format=", "iteratr/SPEC")
    assert_history_is_whole(user_repo, run)


def test_commits_on_another_branch_come_back_onto_the_session_branch(user_repo: Path) -> None:
    def elsewhere(agent: FakeAgent) -> None:
        sh(agent.cwd, "checkout", "--quiet", "-b", "elsewhere")
        (agent.cwd / "elsewhere.txt").write_text("x\n")
        sh(agent.cwd, "add", "elsewhere.txt")
        sh(agent.cwd, "commit", "--quiet", "-m", "the agent's commit elsewhere")

    run = run_loop(user_repo, Script("follow", follow_then(elsewhere), "follow"), iterations=2, expect=3)
    assert "the agent left the checkout on elsewhere; switching back to iteratr/SPEC" in run.output
    assert "the agent's commit elsewhere" in git(user_repo, "log", "--format=%s", "iteratr/SPEC")
    assert run.started() == [0, 1, 2]
    assert_history_is_whole(user_repo, run)

    again = run_loop(user_repo, Script("follow"), iterations=1, expect=0)  # the next build goes on at #3
    assert again.started() == [0, 1, 2, 3]


def test_a_file_over_max_file_size_stays_out_of_the_commit(user_repo: Path) -> None:
    def big(agent: FakeAgent) -> None:
        with open(agent.cwd / "big.bin", "wb") as f:
            f.truncate(100 * 1024 * 1024)  # sparse: costs no disk

    run = run_loop(user_repo, Script("follow", follow_then(big)), iterations=1, expect=3)
    assert "big.bin (100.0 MB) is over max_file_size (50.0 MB): not committed" in run.output
    body = git(user_repo, "log", "-1", "--format=%B", "iteratr/SPEC")
    assert "Not committed (over max_file_size):\n- big.bin (100.0 MB)" in body
    assert not git(user_repo, "log", "--all", "--format=%H", "--", "big.bin")
    assert (user_repo / "big.bin").stat().st_size == 100 * 1024 * 1024
    assert_history_is_whole(user_repo, run)


def test_the_users_untracked_files_are_not_committed_unless_the_agent_changes_them(user_repo: Path) -> None:
    (user_repo / "iteratr.yml").write_text("model: x\n")

    def touch(agent: FakeAgent) -> None:
        (agent.cwd / "iteratr.yml").write_text("model: y\n")

    run = run_loop(user_repo, Script("follow", "follow", follow_then(touch)), iterations=2, expect=3)
    assert "untracked file(s) of yours stay out of the session's commits" in run.output
    assert git(user_repo, "log", "--format=%s", "--", "iteratr.yml").count("\n") == 0  # committed once: #2
    assert git(user_repo, "show", "iteratr/SPEC:iteratr.yml") == "model: y"
    assert_history_is_whole(user_repo, run)


def test_a_process_escaping_with_setsid_is_stopped_when_the_turn_ends(user_repo: Path) -> None:
    marker = "607.25"  # a sleep nobody else runs

    def escape(agent: FakeAgent) -> None:
        subprocess.run(["sh", "-c", f"setsid nohup sleep {marker} >/dev/null 2>&1 &"], cwd=agent.cwd, check=True)
        time.sleep(0.2)

    run = run_loop(user_repo, Script("follow", follow_then(escape)), iterations=1, expect=3)
    assert "stopped 1 process(es) the agent left running" in run.output
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout
    assert not left.strip()
    assert_history_is_whole(user_repo, run)


# -- faults ----------------------------------------------------------------------------------------------


def test_a_stale_git_lock_is_removed_before_the_agent_starts(user_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_loop(user_repo, Script("follow"), iterations=1, expect=3)
    lock = user_repo / ".git" / "index.lock"
    lock.touch()
    old = time.time() - 60
    os.utime(lock, (old, old))
    run = run_loop(user_repo, Script("follow"), iterations=1, expect=3)
    assert f"removed a stale git lock {lock}" in run.output
    assert run.output.index("removed a stale git lock") < run.output.index("agent: fake-agent")
    assert_history_is_whole(user_repo, run)


def test_a_git_lock_held_for_a_moment_is_waited_for(user_repo: Path) -> None:
    lock = user_repo / ".git" / "index.lock"

    async def hold(agent: FakeAgent, prompt: str) -> TurnResult:
        result = await agent._follow(prompt)
        holder = subprocess.Popen(["sh", "-c", f"exec 3>'{lock}'; sleep 0.5; rm -f '{lock}'"])
        await asyncio.sleep(0.1)
        agent.holder = holder  # type: ignore[attr-defined]
        return result

    run = run_loop(user_repo, Script("follow", hold), iterations=1, expect=3)
    assert "could not commit" not in run.output
    assert_history_is_whole(user_repo, run)


def test_a_message_interrupted_in_a_pre_iteration_hook_is_delivered_by_the_next_prompt(user_repo: Path) -> None:
    from tests.run.harness import BackgroundLoop

    (user_repo / ".iteratr.hooks.yml").write_text(
        "version: 1\nhooks:\n  pre_iteration:\n    - command: 'if [ \"$ITERATR_ITERATION\" = 1 ]; then sleep 3; fi'\n"
    )
    script = Script("follow")
    loop = BackgroundLoop(user_repo, script, iterations=2)
    deadline = time.monotonic() + 10
    while not script.prompts and time.monotonic() < deadline:
        time.sleep(0.02)
    (loop.session_dir / "inbox.md").write_text("add a task: from the user\n")
    time.sleep(1.2)  # the pump takes it while the hook sleeps
    loop.interrupt()
    loop.wait(130)
    assert not loop.run.events("user.delivered"), loop.output()
    run = run_loop(user_repo, script, iterations=1, expect=3)
    assert "add a task: from the user" in script.prompts[-1]
    assert run.events("user.delivered")


def test_the_run_stops_being_a_subreaper_when_it_ends(user_repo: Path) -> None:
    from iteratr import reaper

    run_loop(user_repo, Script("follow"), iterations=1, expect=3)
    assert not reaper.is_subreaper()  # pytest itself must not collect every later test's orphans as zombies
