"""End to end: the claude, codex and gemini presets keep a session through iteratr's typed MCP tools.

``iteratr build --agent <preset>`` puts ``iteratr mcp`` in every turn's ``session/new``; the real, pinned agent
starts it and offers its tools to the scripted model under the agent's own naming (``mcp_servers.TOOL_PREFIXES``).
The model (``typed_agent`` below) never touches a shell: it plans with ``task_batch_add`` (an array of objects,
after a malformed batch that must be refused by name and write nothing), then per iteration calls ``task_next``,
``task_status`` and ``iteration_summary``, and ``session_complete`` once no task is left. Each test checks that
the model was offered every tool under the naming iteratr knows for that agent, that the prompt taught those names
(not ``iteratr tool``), and that the store shows every call's effect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iteratr.mcp.tools import TOOLS
from tests.conftest import CliResult, git

from .anthropic_server import AnthropicServer
from .gemini_server import GeminiServer
from .model_server import PLANNING_MARKER, Action, AgentTurn, Call, Step, Text, spec_tasks
from .preset_env import claude_env, codex_env, gemini_env
from .responses_server import ResponsesServer
from .scripted_api import ScriptedApiServer
from .session_run import BuildThread, read_events, tasks_in

SESSION = "typed"
SPEC = """# Two typed things

- [ ] Write the first thing
- [ ] Write the second thing
"""
BUILD_TIMEOUT = 60.0
BAD_BATCH = {"tasks": [{"content": "never added", "priority": 9}]}
TASK_ID = re.compile(r"\b(TAS-\d+) \[P\d\]")
# How each agent names iteratr's MCP tools to its model, as seen in the tool list of its requests (Codex's is a
# Responses namespace "mcp__iteratr" holding the tools: see responses_server).
PREFIX = {"claude": "mcp__iteratr__", "codex": "mcp__iteratr__", "gemini": "mcp_iteratr_"}
# What the model is told of the malformed batch: iteratr's own refusal, or (Gemini CLI) the agent's check of the call
# against the tool's schema, before it calls the server. Either way the field is named and nothing is written.
REFUSAL = {
    "claude": "invalid arguments for task_batch_add: tasks[0].priority: 9 is out of range",
    "codex": "invalid arguments for task_batch_add: tasks[0].priority: 9 is out of range",
    "gemini": "params/tasks/0/priority must be <= 4",
}


def tool_name(agent: str, tool: str) -> str:
    return PREFIX[agent] + tool


def next_task(result: str) -> str | None:
    """The task id ``task_next`` answered: its text (``TAS-1 [P3] …``), or its structured content
    (``{"result": {"id": "TAS-1", …}}``), which is what some agents hand their model; None when none is left."""
    try:
        value = json.loads(result)
    except ValueError:
        found = TASK_ID.search(result)
        return found.group(1) if found else None
    task = value.get("result") if isinstance(value, dict) else None
    return str(task["id"]) if isinstance(task, dict) else None


def typed_agent(agent: str) -> Callable[[AgentTurn], Action]:
    """A model that keeps the session through ``agent``'s names for iteratr's MCP tools only, one call per step."""
    names = {tool_name(agent, tool): tool for tool in TOOLS}

    def call(tool: str, arguments: dict[str, Any]) -> Call:
        return Call(tool_name(agent, tool), arguments)

    def kind(step: Step) -> str:
        return names.get(step.tool, step.tool)

    def script(turn: AgentTurn) -> Action:
        steps = turn.steps
        if PLANNING_MARKER in turn.prompt:
            if not steps:
                return call("task_batch_add", BAD_BATCH)  # refused by its schema: nothing is written
            if len(steps) == 1:
                tasks: list[dict[str, Any]] = [{"content": c, "priority": 3} for c in spec_tasks(turn.prompt)]
                tasks[1:] = [{**t, "depends_on": ["TAS-1"]} for t in tasks[1:]]
                return call("task_batch_add", {"tasks": tasks})
            return Text("Planned.")
        if not steps:
            return call("task_next", {})
        last = steps[-1]
        worked = any(kind(step) == "task_status" for step in steps)
        if kind(last) == "task_next":
            task = next_task(last.result)
            if task is None:
                return call("session_complete", {})
            if worked:
                return Text(f"Finished one task; {task} is next.")
            return call("task_status", {"id": task, "status": "completed"})
        if kind(last) == "task_status":
            return call("iteration_summary", {"summary": f"Completed {last.arguments['id']}"})
        if kind(last) == "iteration_summary":
            return call("task_next", {})
        return Text("Done.")

    return script


def run_typed_session(repo: Path, agent: str, env: dict[str, str], server: ScriptedApiServer, model: str) -> str:
    """The whole session through the typed tools, checked; returns the diagnostics for further checks."""
    (repo / "specs").mkdir()
    (repo / "specs" / f"{SESSION}.md").write_text(SPEC, encoding="utf-8")
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "spec")
    args = ["build", "--headless", "--spec", f"specs/{SESSION}.md", "--agent", agent, "--model", model]
    build = BuildThread([*args, "--iterations", "5"], cwd=repo, env=env, timeout=BUILD_TIMEOUT)
    build.start()
    build.join(BUILD_TIMEOUT + 10)
    turns = server.turns
    agent_log = repo / ".iteratr" / SESSION / "agent.log"
    tail = agent_log.read_text(encoding="utf-8", errors="replace")[-3000:] if agent_log.exists() else "(none)"
    steps = [[(s.tool, s.result[:200]) for s in t.steps] for t in turns]
    offered = sorted(turns[0].tools) if turns else []
    info = (
        f"\nbuild: {build.result!r}\nbuild error: {build.error!r}\nmodel errors: {server.errors}\noffered: {offered}"
        f"\nsteps: {steps}\nagent.log tail:\n{tail}"
    )
    assert not build.is_alive() and build.error is None, info
    result: CliResult | None = build.result
    assert result is not None and result.returncode == 0, info
    assert server.errors == [], info

    # The model was offered every typed tool under the agent's naming, and every prompt taught those names.
    assert {tool_name(agent, tool) for tool in TOOLS} <= set(offered), info
    for turn in turns:
        assert f"`{tool_name(agent, 'task_')}" in turn.prompt and " tool task-" not in turn.prompt, turn.prompt
    last_requests = {turn.prompt: turn for turn in turns}  # each ACP turn's last model request has all its steps
    calls = [step for turn in last_requests.values() for step in turn.steps]
    assert calls and all(step.tool in {tool_name(agent, t) for t in TOOLS} for step in calls), info

    # The malformed batch was refused by name and wrote nothing: the real batch got TAS-1 and TAS-2.
    refused = next(step for step in calls if step.arguments == BAD_BATCH)
    assert REFUSAL[agent] in refused.result, info
    events = read_events(repo / ".iteratr" / SESSION / "events.jsonl")
    added = [e["data"] for e in events if e["type"] == "task.added"]
    assert [(t["id"], t["content"], t["priority"], t["depends_on"]) for t in added] == [
        ("TAS-1", "Write the first thing", 3, []),
        ("TAS-2", "Write the second thing", 3, ["TAS-1"]),
    ], info

    # Every typed call's effect is in the store: both tasks completed, a summary each, the session completed by
    # the model's own session_complete.
    assert [(t["id"], t["status"]) for t in tasks_in(events)] == [("TAS-1", "completed"), ("TAS-2", "completed")]
    summaries = sorted(e["data"]["summary"] for e in events if e["type"] == "iteration.summary")
    assert summaries == ["Completed TAS-1", "Completed TAS-2"], info
    assert any(tool_name(agent, "session_complete") == step.tool for step in calls), info
    assert any(e["type"] == "session.completed" for e in events), info
    assert "the session is complete" in result.stdout, info
    return info


@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_claude_keeps_the_session_through_the_typed_mcp_tools(repo: Path, claude_bin_dir: Path, tmp_path: Path) -> None:
    with AnthropicServer(typed_agent("claude")) as server:
        env = claude_env(claude_bin_dir, tmp_path / "claude-home", server)
        run_typed_session(repo, "claude", env, server, model="haiku")


@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_codex_keeps_the_session_through_the_typed_mcp_tools(repo: Path, codex_bin_dir: Path, tmp_path: Path) -> None:
    with ResponsesServer(typed_agent("codex")) as server:
        env = codex_env(codex_bin_dir, tmp_path / "codex-home", server)
        run_typed_session(repo, "codex", env, server, model="gpt-5.4")


@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_gemini_keeps_the_session_through_the_typed_mcp_tools(repo: Path, gemini_bin_dir: Path, tmp_path: Path) -> None:
    with GeminiServer(typed_agent("gemini")) as server:
        env = {
            **gemini_env(gemini_bin_dir, tmp_path / "gemini-home", server),
            # Gemini CLI connects no stdio MCP server in a folder it does not trust, which is any new folder;
            # iteratr teaches it the tools only when this says it will (mcp_servers.CONNECTS_ONLY_IF).
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
        }
        run_typed_session(repo, "gemini", env, server, model="gemini-2.5-pro")
