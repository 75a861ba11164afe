"""Lifecycle hooks inside the loop, in-process: real shells and a real git repo, the fake agent of tests/fakes.py.

Each hook writes a marker line (``pre 2``, ``task 3 TAS-2`` ...) to a file outside the repository, and
echoes a recognisable line that, with ``pipe_output``, must land in exactly the right prompt; the fake
agent keeps every prompt it receives. The order of hook runs is checked against the event log
(``hook.ran`` between ``iteration.started``/``iteration.ended``). Hooks with real signals (Ctrl+C,
SIGTERM, a second Ctrl+C during a hook) and invalid hooks files are in test_build_e2e.py.
"""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path
from typing import Any, cast

import pytest

from iteratr.agent.events import TurnResult
from iteratr.errors import EXIT_FAILED, EXIT_INCOMPLETE
from iteratr.session import ops
from tests.conftest import git, read_events, run_cli
from tests.fakes import FakeAgent, Script
from tests.run.harness import run_loop
from tests.run.helpers import Hook, marker, read_markers, write_hooks


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


def hook_events(repo: Path, hook: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = [cast(dict[str, Any], e["data"]) for e in read_events(repo) if e["type"] == "hook.ran"]
    return [data for data in runs if data["hook"] == hook]


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


def alive(pid: int) -> bool:
    """Running (not a zombie: an orphan may never be reaped by a container's init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


# -- when each hook fires, and where its piped output goes ----------------------------------------------


def test_every_hook_fires_at_its_moment_and_pipes_into_the_right_prompt(spec_repo: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))
    script = Script("follow")
    run_loop(spec_repo, script, iterations=10)  # the "hooks: ..." line `build` prints: test_build_e2e.py

    assert read_markers(markers) == [
        "start",
        "pre 0",
        "post 0",
        "pre 1",
        "post 1",
        "task 1 TAS-1",
        "pre 2",
        "post 2",
        "task 2 TAS-2",
        "pre 3",
        "post 3",
        "task 3 TAS-3",
        "end",
    ]
    # The same order in the event log, relative to the iterations and the task completions.
    expected: list[tuple[Any, ...]] = [("hook", "session_start"), ("hook", "pre_iteration", 0)]
    expected += [("started", 0), ("ended", 0, "ok"), ("hook", "post_iteration", 0)]
    for n in (1, 2, 3):
        expected += [("hook", "pre_iteration", n), ("started", n), ("completed", f"TAS-{n}"), ("ended", n, "ok")]
        expected += [("hook", "post_iteration", n), ("hook", "on_task_complete", f"TAS-{n}")]
    expected.append(("hook", "session_end"))
    assert timeline(spec_repo) == expected

    prompts = script.prompts
    assert len(prompts) == 4
    seen = [
        sorted(token for token in ("START-OUT", "PRE-OUT-", "POST-OUT-", "TASK-OUT-", "END-OUT") if token in p)
        for p in prompts
    ]
    assert seen[0] == ["PRE-OUT-", "START-OUT"]  # session_start is held for the first prompt only
    assert "PRE-OUT-0" in prompts[0]
    for n in (1, 2, 3):
        assert f"PRE-OUT-{n}" in prompts[n] and f"POST-OUT-{n - 1}" in prompts[n]
        assert "START-OUT" not in prompts[n]
        assert all(f"PRE-OUT-{k}" not in prompts[n] for k in range(4) if k != n)
        assert all(f"POST-OUT-{k}" not in prompts[n] for k in range(4) if k != n - 1)
    assert "TASK-OUT" not in prompts[1]
    assert "TASK-OUT-TAS-1" in prompts[2] and "TASK-OUT-TAS-2" not in prompts[2]
    assert "TASK-OUT-TAS-2" in prompts[3] and "TASK-OUT-TAS-1" not in prompts[3]
    assert not any("END-OUT" in p for p in prompts)  # session_end is never piped
    # The section names the hook and says it succeeded.
    assert "session_start hook succeeded (exit status 0)" in prompts[0]
    assert "pre_iteration hook succeeded (exit status 0)" in prompts[1]
    assert "post_iteration hook succeeded (exit status 0)" in prompts[1]
    assert "on_task_complete hook succeeded (exit status 0)" in prompts[2]

    runs = [e for e in read_events(spec_repo) if e["type"] == "hook.ran"]
    for event in runs:
        data: Any = event["data"]
        assert data["exit_status"] == 0 and data["timed_out"] is False
        assert isinstance(data["duration"], float | int) and data["duration"] >= 0
        assert data["command"] in {entry[0]["command"] for entry in all_types(markers).values()}
    assert_clean(spec_repo)


@pytest.mark.parametrize("mode", ["crash", "empty"])
def test_on_error_output_goes_into_the_retry_prompt_and_session_end_runs_at_the_failure_limit(
    spec_repo: Path, tmp_path: Path, mode: str
) -> None:
    markers = tmp_path / "markers"
    hooks = all_types(markers)
    hooks["on_error"] = [
        {
            "command": marker(markers, "error {{iteration}}") + '; echo "ERROR-OUT {{iteration}}: {{error}}"; exit 4',
            "pipe_output": True,
        },
        # The failed iteration is not committed yet: `git diff HEAD` (the README's example) still sees it.
        {"command": "git status --porcelain --untracked-files=no", "pipe_output": True},
    ]
    write_hooks(spec_repo, hooks)
    script = Script("follow", mode)
    result = run_loop(spec_repo, script, iterations=10, max_failures=2, expect=EXIT_FAILED)

    assert read_markers(markers) == [
        "start",
        "pre 0",
        "post 0",
        "pre 1",
        "post 1",
        "error 1",
        "pre 2",
        "post 2",
        "error 2",
        "end",
    ]
    failed = [t for t in timeline(spec_repo) if t[0] == "ended" and t[2] != "ok"]
    assert [t[1] for t in failed] == [1, 2]
    errors = hook_events(spec_repo, "on_error")
    assert [e["exit_status"] for e in errors] == [4, 0, 4, 0]
    assert [e["hook"] for e in hook_events(spec_repo, "session_end")] == ["session_end"]
    assert "hook on_error" in result.output and "exit 4" in result.output

    prompts = script.prompts
    assert len(prompts) == 3
    assert "ERROR-OUT" not in prompts[1]
    retry = prompts[2]
    assert "ERROR-OUT 1: " in retry and "ERROR-OUT 2" not in retry
    assert "on_error hook FAILED (exit status 4)" in retry
    assert "Iteration #1" in retry
    assert ".iteratr/SPEC/events.jsonl" in retry  # the on_error hook saw the uncommitted failed iteration
    assert "END-OUT" not in "".join(prompts)
    assert_clean(spec_repo)


def test_session_end_runs_once_at_the_iterations_limit(spec_repo: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))
    run_loop(spec_repo, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # planning does not count
    assert read_markers(markers) == ["start", "pre 0", "post 0", "pre 1", "post 1", "task 1 TAS-1", "end"]
    assert timeline(spec_repo)[-1] == ("hook", "session_end")
    assert_clean(spec_repo)


def test_session_end_runs_once_after_an_interrupt(spec_repo: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))

    async def interrupted(agent: FakeAgent, prompt: str) -> TurnResult:
        os.kill(os.getpid(), signal.SIGINT)  # the turn is running: Ctrl+C
        return await agent.wait_for_cancel()

    run_loop(spec_repo, Script("follow", interrupted), iterations=10, expect=130)
    assert read_markers(markers) == ["start", "pre 0", "post 0", "pre 1", "end"]
    assert ("ended", 1, "interrupted") in timeline(spec_repo)
    assert timeline(spec_repo)[-1] == ("hook", "session_end")
    assert_clean(spec_repo)


# -- on_task_complete: from whatever source, once --------------------------------------------------------


def test_task_completed_by_the_user_during_a_build_fires_once(spec_repo: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))

    async def user_completes_tas_3(agent: FakeAgent, prompt: str) -> TurnResult:
        # Prompt 2 hangs until the idle timeout; meanwhile the user completes TAS-3 (as `iteratr tool` would).
        ops.task_status(agent.store, "TAS-3", "completed")
        return await agent.wait_for_cancel()

    script = Script("follow", user_completes_tas_3, "follow")
    run_loop(spec_repo, script, iterations=10, idle_timeout=0.2)

    tasks = [m for m in read_markers(markers) if m.startswith("task ")]
    assert tasks == ["task 1 TAS-3", "task 2 TAS-1", "task 3 TAS-2"]
    assert read_markers(markers).index("task 1 TAS-3") == read_markers(markers).index("post 1") + 1
    sent = script.prompts
    assert "TASK-OUT-TAS-3" not in sent[1]
    assert "TASK-OUT-TAS-3" in sent[2] and "ERROR-OUT" in sent[2]  # the retry gets both
    assert all("TASK-OUT-TAS-3" not in p for p in sent[3:])
    assert_clean(spec_repo)


def test_task_completed_by_the_user_between_runs_fires_once_into_the_next_prompt(
    spec_repo: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    write_hooks(spec_repo, all_types(markers))
    # Planning, then a main iteration that does nothing (-i counts main iterations only).
    run_loop(spec_repo, Script("follow", "ok"), iterations=1, expect=EXIT_INCOMPLETE)
    run_cli("tool", "task-status", "--name", "SPEC", "--id", "TAS-2", "--status", "completed", cwd=spec_repo)
    script = Script("follow")
    run_loop(spec_repo, script, iterations=10)

    tasks = [m for m in read_markers(markers) if m.startswith("task ")]
    assert [t.split()[-1] for t in tasks] == ["TAS-2", "TAS-1", "TAS-3"]
    sent = script.prompts
    assert "TASK-OUT-TAS-2" in sent[0]  # the first prompt of the second run
    assert all("TASK-OUT-TAS-2" not in p for p in sent[1:])
    assert [e["task_id"] for e in hook_events(spec_repo, "on_task_complete")] == ["TAS-2", "TAS-1", "TAS-3"]
    assert_clean(spec_repo)


# -- safety: values are data, hooks are contained ---------------------------------------------------------


def test_task_titles_never_run_in_a_hook(repo: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    titles = [
        f"$(touch {pwned}1)",
        f"`touch {pwned}2`",
        f'it\'s "quoted"; touch {pwned}3 && echo $HOME',
    ]
    (repo / "specs").mkdir()
    (repo / "specs" / "SPEC.md").write_text("# Evil\n\n## Tasks\n" + "".join(f"- [ ] {t}\n" for t in titles))
    git(repo, "add", "specs/SPEC.md")
    git(repo, "commit", "-q", "-m", "spec")
    bare, quoted, env_out = tmp_path / "bare", tmp_path / "quoted", tmp_path / "env"
    write_hooks(
        repo,
        {
            "on_task_complete": [
                {"command": f"echo {{{{task_content}}}} >> {shlex.quote(str(bare))}"},
                {"command": f'echo "{{{{task_id}}}}: {{{{task_content}}}}" >> {shlex.quote(str(quoted))}'},
                {"command": f"printf '%s\\n' \"$ITERATR_TASK_CONTENT\" >> {shlex.quote(str(env_out))}"},
            ]
        },
    )
    run_loop(repo, Script("follow"), iterations=10)

    assert not list(tmp_path.glob("pwned*"))
    assert bare.read_text().splitlines() == titles
    assert quoted.read_text().splitlines() == [f"TAS-{i}: {t}" for i, t in enumerate(titles, 1)]
    assert env_out.read_text().splitlines() == titles


def test_a_hook_timeout_kills_its_grandchild_and_the_run_goes_on(spec_repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    inner = f"sleep 300 & echo $! > {shlex.quote(str(pid_file))}; wait"
    write_hooks(
        spec_repo,
        {
            "session_start": [
                {"command": f"echo PARTIAL-OUTPUT; sh -c {shlex.quote(inner)}", "timeout": 1, "pipe_output": True}
            ],
            "session_end": [{"command": f"echo ended >> {shlex.quote(str(tmp_path / 'ended'))}"}],
        },
    )
    script = Script("follow")
    result = run_loop(spec_repo, script, iterations=10)

    pid = int(pid_file.read_text())
    survived = alive(pid)
    if survived:
        os.kill(pid, signal.SIGKILL)  # don't leave it behind
    assert not survived, "the hook's grandchild outlived its timeout"
    assert "hook session_start" in result.output and "timed out" in result.output
    [ran] = hook_events(spec_repo, "session_start")
    assert ran["timed_out"] is True and ran["exit_status"] is None
    first = script.prompts[0]
    assert "session_start hook FAILED (timed out after 1s; output so far below)" in first
    assert "PARTIAL-OUTPUT" in first
    assert (tmp_path / "ended").read_text() == "ended\n"  # the run went on to its end


def test_a_failing_hook_leaves_the_run_going(spec_repo: Path, tmp_path: Path) -> None:
    write_hooks(
        spec_repo,
        {
            "pre_iteration": [{"command": "echo LINT-BROKEN; exit 1", "pipe_output": True}],
            "post_iteration": [{"command": "echo TESTS-BROKEN >&2; exit 7"}],
        },
    )
    script = Script("follow")
    result = run_loop(spec_repo, script, iterations=10)

    assert "the session is complete" in result.output
    assert "hook post_iteration: echo TESTS-BROKEN >&2; exit 7 -> exit 7" in result.output
    assert "TESTS-BROKEN" in result.output  # the failure's output is shown
    assert [e["exit_status"] for e in hook_events(spec_repo, "post_iteration")] == [7] * 4
    assert [e["exit_status"] for e in hook_events(spec_repo, "pre_iteration")] == [1] * 4
    prompts = script.prompts
    assert all("pre_iteration hook FAILED (exit status 1)" in p and "LINT-BROKEN" in p for p in prompts)
    assert all("TESTS-BROKEN" not in p for p in prompts)  # not piped


def test_no_hooks_file_means_no_hooks(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    assert run.settings.hooks is None  # the "hooks: none" line `build` prints: test_build_e2e.py
    assert not run.events("hook.ran")
