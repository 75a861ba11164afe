"""The agent's side: iteratr puts ``iteratr mcp`` in every turn's ``session/new``, the agent can run it as given,
and the prompt teaches the MCP tools when the agent's naming of them is known."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from iteratr.agent import mcp_servers
from iteratr.agent.events import AgentInfo, AgentText
from iteratr.agent.runner import AgentRunner
from iteratr.agent.seam import AgentLaunch
from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, run_cli
from tests.fakes import FakeAgent, Script
from tests.run.harness import run_loop

AGENT = Path(__file__).with_name("mcp_agent.py")
SESSION_ENV = {"ITERATR_SESSION": "S", "ITERATR_DATA_DIR": "/data/.iteratr", "ITERATR_BIN": "/py -m iteratr"}


def test_the_server_is_this_iteratr_with_the_sessions_variables() -> None:
    server = mcp_servers.iteratr_server({**SESSION_ENV, "ITERATR_ITERATION": "4", "OPENAI_API_KEY": "sk-secret"})
    assert server == mcp_servers.StdioServer(
        "iteratr", "/py", ("-m", "iteratr", "mcp"), (("ITERATR_SESSION", "S"), ("ITERATR_DATA_DIR", "/data/.iteratr"))
    )
    acp_server = server.to_acp()
    assert acp_server.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "name": "iteratr",
        "command": "/py",
        "args": ["-m", "iteratr", "mcp"],
        "env": [{"name": "ITERATR_SESSION", "value": "S"}, {"name": "ITERATR_DATA_DIR", "value": "/data/.iteratr"}],
    }


@pytest.mark.parametrize("off", ["0", "off", "false", "no", " OFF "])
def test_iteratr_mcp_off_leaves_it_out(off: str) -> None:
    assert mcp_servers.iteratr_server({**SESSION_ENV, "ITERATR_MCP": off}) is None
    assert mcp_servers.iteratr_server({**SESSION_ENV, "ITERATR_MCP": "1"}) is not None


def test_no_session_no_server() -> None:
    """doctor's and setup's probes run the agent without a session: nothing to serve."""
    assert mcp_servers.iteratr_server({"ITERATR_BIN": "/py -m iteratr"}) is None
    assert mcp_servers.iteratr_server({"ITERATR_SESSION": "S"}) is None


def test_the_prompt_prefix_is_known_only_for_agents_seen_naming_the_tools() -> None:
    server = mcp_servers.iteratr_server(SESSION_ENV)
    assert mcp_servers.describe(AgentInfo("OpenCode", "1.18.33"), server).mcp_prefix == "iteratr_"
    assert mcp_servers.describe(AgentInfo("some-agent", "1"), server).mcp_prefix is None
    assert mcp_servers.describe(AgentInfo("OpenCode", "1.18.33"), None).mcp_prefix is None


def run_agent(repo: Path, tmp_path: Path, name: str, **extra: str) -> tuple[AgentInfo, list[dict[str, Any]], str]:
    """Start the MCP-using test agent through AgentRunner, open a probe session, run one turn; what it saw."""
    log = tmp_path / "sessions.jsonl"
    env = {
        **os.environ,
        "ITERATR_SESSION": "S",
        "ITERATR_DATA_DIR": str(repo / ".iteratr"),
        "ITERATR_BIN": shlex.join(ITERATR_CMD),
        **extra,
    }
    said: list[str] = []

    def heard(event: object) -> None:
        if isinstance(event, AgentText):
            said.append(event.text)

    async def go() -> AgentInfo:
        runner = AgentRunner(
            [sys.executable, str(AGENT), name, str(log)],
            cwd=repo,
            env=env,
            stderr_log=tmp_path / "agent.log",
            on_event=heard,
        )
        try:
            info = await runner.start()
            await runner.open_session(30)  # the build's check of the model: no server for it
            result = await runner.run_turn("Task from the agent", iteration_timeout=60, idle_timeout=60)
            assert result.stop_reason == "end_turn", (result, (tmp_path / "agent.log").read_text())
            return info
        finally:
            await runner.close()

    info = asyncio.run(go())
    return info, [json.loads(line) for line in log.read_text().splitlines()], "".join(said)


def test_every_turn_gives_the_agent_a_server_it_can_run(repo: Path, tmp_path: Path) -> None:
    info, sessions, said = run_agent(repo, tmp_path, "OpenCode")
    assert info.mcp_prefix == "iteratr_"
    probe, turn = sessions
    assert probe["mcpServers"] == []
    [server] = turn["mcpServers"]
    assert [server["command"], *server["args"]] == [*ITERATR_CMD, "mcp"]
    assert server["name"] == "iteratr"
    *env, socket_var = server["env"]
    assert env == [
        {"name": "ITERATR_SESSION", "value": "S"},
        {"name": "ITERATR_DATA_DIR", "value": str(repo / ".iteratr")},
    ]
    # The run's listener: its private socket is gone once the agent is closed (tests/mcp/test_relay.py has the rest).
    assert socket_var["name"] == "ITERATR_MCP_SOCKET"
    assert not Path(socket_var["value"]).parent.exists()
    # The agent started it as given and called task_add over it: the store has the task.
    assert said == "iteratr: added TAS-1 [P2] remaining: Task from the agent\n"
    tasks = json.loads(run_cli("tool", "task-list", "--json", "-n", "S", cwd=repo).stdout)
    assert [(t["id"], t["content"]) for t in tasks] == [("TAS-1", "Task from the agent")]


def test_with_mcp_off_the_agent_gets_no_server(repo: Path, tmp_path: Path) -> None:
    info, sessions, said = run_agent(repo, tmp_path, "OpenCode", ITERATR_MCP="0")
    assert info.mcp_prefix is None
    assert [s["mcpServers"] for s in sessions] == [[], []]
    assert said == ""


class McpFakeAgent(FakeAgent):
    """The loop's fake agent, reporting opencode's naming of the MCP tools as the runner would."""

    async def start(self) -> AgentInfo:
        return replace(await super().start(), mcp_prefix="iteratr_")


class McpScript(Script):
    def __call__(self, launch: AgentLaunch) -> FakeAgent:
        self.launches.append(launch)
        agent = McpFakeAgent(self, launch)
        self.agents.append(agent)
        return agent


def test_the_loop_teaches_the_mcp_tools_when_the_agent_names_them(spec_repo: Path) -> None:
    script = McpScript("follow")
    run_loop(spec_repo, script, iterations=1, expect=3)
    planning, main = script.prompts
    assert "`iteratr_task_batch_add` tool" in planning and '{"tasks": [{"content": "...", "priority": 3}' in planning
    for name in ("task_next", "task_status", "task_add", "note_add", "iteration_summary", "task_list"):
        assert f"`iteratr_{name}`" in main, name
    for text in (planning, main):
        assert " tool task-" not in text and " tool note-add" not in text


def test_without_a_known_naming_the_loop_teaches_the_shell(spec_repo: Path) -> None:
    script = Script("follow")
    run_loop(spec_repo, script, iterations=1, expect=3)
    planning, main = script.prompts
    assert " tool task-batch-add --tasks" in planning and " tool task-next`" in main
    assert "iteratr_" not in planning + main


def test_the_mcp_server_outlives_an_agent_crash_and_is_never_taken_for_an_escaped_process(
    spec_repo: Path, tmp_path: Path
) -> None:
    """The run's MCP server is iteratr's child from the agent's start to the run's end: restarting a crashed agent
    keeps it (a new one started mid-turn would be stopped as a process the agent left running)."""
    agent = fake_agent("follow", "follow", "crash", "follow", state_file=tmp_path / "state")
    out = run_cli("build", "--headless", "-i", "3", "--agent", agent, cwd=spec_repo, env=FAST_ENV, expect=None)
    assert "exited with status 3" in out.stdout + out.stderr, out  # the crash happened, and the run went on
    assert "left running past its turn" not in out.stdout + out.stderr, out


def test_an_agent_that_cannot_start_leaves_no_mcp_server_behind(spec_repo: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    agent = shlex.join([sys.executable, "-c", "pass"])  # exits before initialize
    run_cli("build", "--headless", "--agent", agent, cwd=spec_repo, env={**FAST_ENV, "TMPDIR": str(tmp)}, expect=1)
    assert [p.name for p in tmp.iterdir() if p.name.startswith("iteratr-mcp-")] == []


def test_a_long_task_list_points_to_the_mcp_tool_for_every_task() -> None:
    from iteratr.run import prompt
    from iteratr.session.reducer import replay

    events = [
        {
            "v": 1,
            "ts": "2026-01-01T00:00:00Z",
            "type": "task.added",
            "iteration": 0,
            "data": {"id": f"TAS-{n}", "content": f"t{n}", "status": "completed", "priority": 2, "depends_on": []},
        }
        for n in range(1, 9)
    ]
    text = prompt.render_tasks(replay(events), "iteratr", "iteratr_")
    assert '`iteratr_task_list` with `{"all": true}` shows every task.' in text
    assert "tool task-list" not in text


def test_a_listener_killed_at_once_leaves_no_socket_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl+C kills the run's listener with SIGKILL: it cannot clean up, so iteratr removes its directory."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    host = mcp_servers.McpHost({**SESSION_ENV, "ITERATR_BIN": shlex.join(ITERATR_CMD)})

    def listed() -> list[str]:
        return [p.name for p in tmp_path.iterdir() if p.name.startswith("iteratr-mcp-")]

    async def start_then_kill() -> tuple[list[str], list[str]]:
        assert await host.start(tmp_path)
        made = listed()
        host.kill_now()  # the build is on its way out: nothing else runs after this
        left = listed()
        await host.stop()  # only to reap the killed process in this test
        return made, left

    made, left = asyncio.run(start_then_kill())
    assert len(made) == 1  # it was there while the listener ran
    assert left == []
