"""End to end: ``iteratr build --agent opencode`` (the preset) drives the real opencode (ACP) against a scripted
model until a spec is done.

The scripted model (``model_server.diligent_agent``) loads the spec's tasks when planning and then does one task
per iteration through ``$ITERATR_BIN tool ...`` in opencode's bash tool. While the build runs, a message is saved
into the session's inbox the way vim saves (temp file renamed over it), and a ``pre_iteration`` hook pipes its
output into the prompts. Never skipped in CI (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git

from .model_server import PLANNING_MARKER, ScriptedModelServer
from .opencode_env import OpencodeEnv
from .session_run import (
    BuildThread,
    iteration_number,
    read_events,
    run_with_message,
    tasks_in,
)

SESSION = "three"
SPEC = """# Three small things

Create one file per task.

- [ ] Create the alpha file
- [ ] Create the beta file
- [ ] Create the gamma file
"""
HOOKS = """version: 1
hooks:
  pre_iteration:
    - command: echo HOOK-MARKER-$ITERATR_ITERATION
      pipe_output: true
"""
MESSAGE = "Please also keep the zebra-42 convention in mind"
BUILD_TIMEOUT = 240.0
# An iteration's footer (its header, ``=== #N | task`` or ``=== #N planning``, has no outcome word).
FOOTER_RE = re.compile(r"^=== #\d+ (ok|failed|timeout|interrupted) \| ")


def diagnostics(build: BuildThread, server: ScriptedModelServer, repo: Path) -> str:
    agent_log = repo / ".iteratr" / SESSION / "agent.log"
    tail = agent_log.read_text(encoding="utf-8", errors="replace")[-3000:] if agent_log.exists() else "(none)"
    headers = [turn.header for turn in server.turns]
    return (
        f"\nbuild: {build.result!r}\nbuild error: {build.error!r}\nmodel requests: {headers}"
        f"\nmodel errors: {server.errors}\nagent.log tail:\n{tail}"
    )


@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_build_with_real_opencode_completes_spec_with_inbox_and_hooks(
    repo: Path, opencode_env: OpencodeEnv, model_server: ScriptedModelServer
) -> None:
    (repo / "specs").mkdir()
    (repo / "specs" / "three.md").write_text(SPEC, encoding="utf-8")
    (repo / ".iteratr.hooks.yml").write_text(HOOKS, encoding="utf-8")
    git(repo, "add", "specs/three.md", ".iteratr.hooks.yml")
    git(repo, "commit", "-q", "-m", "add spec and hooks")
    base = git(repo, "rev-parse", "HEAD")
    session_dir = repo / ".iteratr" / SESSION
    events_path = session_dir / "events.jsonl"

    build = BuildThread(
        [
            "build",
            "--headless",
            "--spec",
            "specs/three.md",
            "--agent",
            "opencode",  # the preset: `opencode acp`, found on PATH
            "--model",
            opencode_env.model,
            "--iterations",
            "10",
        ],
        cwd=repo,
        env={**opencode_env.env, "PATH": f"{opencode_env.binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=BUILD_TIMEOUT,
    )
    started, message_saved_at = run_with_message(build, session_dir, MESSAGE, BUILD_TIMEOUT)
    info = diagnostics(build, model_server, repo)
    assert started, f"iteration #1 never started{info}"
    assert not build.is_alive(), f"build still running{info}"
    assert build.error is None and build.result is not None, info
    assert build.result.returncode == 0, info
    assert model_server.errors == [], info

    # All three spec tasks were loaded by planning and completed by the agent.
    tasks = tasks_in(read_events(events_path))
    assert sorted(task["content"] for task in tasks) == [
        "Create the alpha file",
        "Create the beta file",
        "Create the gamma file",
    ], info
    assert [task["status"] for task in tasks] == ["completed"] * 3, info

    # Exactly one commit per iteration on iteratr/three, each with its trailers.
    events = read_events(events_path)
    started_ns = sorted(int(e["data"]["n"]) for e in events if e.get("type") == "iteration.started")
    commits = git(repo, "rev-list", f"{base}..iteratr/{SESSION}").split()
    assert len(commits) == len(started_ns), f"{len(commits)} commits for iterations {started_ns}{info}"
    trailers = [
        (
            git(repo, "log", "-1", "--format=%(trailers:key=Iteratr-Iteration,valueonly)", commit).split(),
            git(repo, "log", "-1", "--format=%(trailers:key=Iteratr-Session,valueonly)", commit).split(),
        )
        for commit in commits
    ]
    assert all(len(numbers) == 1 and names == [SESSION] for numbers, names in trailers), f"{trailers}{info}"
    assert sorted(int(numbers[0]) for numbers, _ in trailers) == started_ns, f"{trailers}{info}"

    # The agent's work is in the branch's tree, one file per task.
    tree = git(repo, "ls-tree", "-r", "--name-only", f"iteratr/{SESSION}").splitlines()
    assert sorted(path for path in tree if path.startswith("work/")) == sorted(
        f"work/{task['id']}.txt" for task in tasks
    ), info

    # The inbox message reached a later prompt, once, and the event log.
    carrying = [turn for turn in model_server.turns if MESSAGE in turn.prompt]
    assert carrying, f"no prompt carried the inbox message{info}"
    assert all(turn.received_at >= message_saved_at for turn in carrying), info
    assert len({turn.header for turn in carrying}) == 1, f"message delivered to several iterations{info}"
    user_messages = [e for e in events if e.get("type") == "user.message"]
    assert any(MESSAGE in json.dumps(e.get("data")) for e in user_messages), f"{user_messages}{info}"

    # The pre_iteration hook's output went into each main iteration's prompt.
    main_prompts = {turn.header: turn.prompt for turn in model_server.turns if PLANNING_MARKER not in turn.prompt}
    assert main_prompts, info
    for header, prompt in main_prompts.items():
        number = header.rsplit("#", 1)[-1]
        assert f"HOOK-MARKER-{number}" in prompt, f"{header}: no hook output in prompt{info}"

    assert_usage_is_what_the_model_served(events, build.result.stdout, model_server, info)


def assert_usage_is_what_the_model_served(
    events: list[dict[str, Any]], stdout: str, server: ScriptedModelServer, info: str
) -> None:
    """Each iteration's tokens are the sum over every model call of its turn, read from opencode's own record.

    opencode 1.18.33's ACP response reports only the turn's last call, so these figures come from ``opencode
    export`` (``source`` ``agent-record``). Which calls opencode's record counts (seen in its export: one assistant
    message per agent-turn call, ``info.tokens`` their sum): every agent-turn call (a request with ``tools``);
    never the session-title call (a request without ``tools``, one per session), whose usage opencode keeps out
    of the session's record. The server's usage differs per call (``usage_for``), so a count of the last call
    only, or of one call times the number of calls, or one that added the title call, fails here.
    """
    served: dict[int, list[int]] = {}
    for call in server.served:
        if not call.title:
            served.setdefault(iteration_number(call.prompt), []).append(call.total_tokens)
    ended = {int(e["data"]["n"]): e["data"] for e in events if e.get("type") == "iteration.ended"}
    detail = f"\nserved per iteration: {served}\nended: {ended}\ntitle calls: {server.title_requests}{info}"
    assert sorted(served) == sorted(ended), detail
    # What makes the sums below tell: turns of several calls, each with its own figure, and title calls that
    # were served (usage included) yet must not be counted.
    assert any(len(set(calls)) > 1 for calls in served.values()), detail
    assert any(call.title and call.total_tokens > 0 for call in server.served), detail
    footers = [line for line in stdout.splitlines() if FOOTER_RE.match(line)]
    for n, calls in served.items():
        usage = ended[n].get("usage") or {}
        assert usage.get("source") == "agent-record", f"#{n}: {usage}{detail}"
        assert usage.get("total_tokens") == sum(calls), f"#{n}: {usage} vs served {calls}{detail}"
        assert usage.get("input_tokens", 0) + usage.get("output_tokens", 0) == sum(calls), f"#{n}: {usage}{detail}"
        footer = [line for line in footers if line.startswith(f"=== #{n} ")]
        assert len(footer) == 1 and f"tokens: {sum(calls):,}" in footer[0], f"#{n}: {footer}{detail}"
        assert "last call only" not in footer[0], f"#{n}: {footer}{detail}"
