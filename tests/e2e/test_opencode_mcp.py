"""End to end: the real opencode calls iteratr's typed MCP tools, and the store shows the effects.

``iteratr build`` puts ``iteratr mcp`` in every turn's ``session/new``. The scripted model (``mcp_agent`` below)
never touches a shell: it plans with ``iteratr_task_batch_add`` (an array of objects, after a malformed batch that
must be refused by name and write nothing), then per iteration calls ``iteratr_task_next``,
``iteratr_task_status``, ``iteratr_note_add`` and ``iteratr_iteration_summary``, and finally
``iteratr_session_complete``. The tools' names are opencode's (the server name, ``_``, the tool's name): the
prompt teaches them, and the model's tool list carries them. Never skipped in CI (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iteratr.mcp.tools import TOOLS
from tests.conftest import git, run_cli

from .model_server import PLANNING_MARKER, AgentTurn, Call, ScriptedModelServer, Text, spec_tasks
from .opencode_env import make_opencode_env

SESSION = "typed"
SPEC = """# Two typed things

- [ ] Write the first thing
- [ ] Write the second thing
"""
PREFIX = "iteratr_"
BUILD_TIMEOUT = 90.0
BAD_BATCH = {"tasks": [{"content": "never added", "priority": 9}]}
TASK_LINE = re.compile(r"^(TAS-\d+) \[P\d\] ")


def mcp_agent(turn: AgentTurn) -> Text | Call:
    """A model that keeps the session through the typed tools only, one call per step."""
    steps = turn.steps
    if PLANNING_MARKER in turn.prompt:
        if not steps:
            return Call(PREFIX + "task_batch_add", BAD_BATCH)  # refused by its schema: nothing is written
        if len(steps) == 1:
            tasks: list[dict[str, Any]] = [{"content": c, "priority": 3} for c in spec_tasks(turn.prompt)]
            tasks[1:] = [{**t, "depends_on": ["TAS-1"]} for t in tasks[1:]]
            return Call(PREFIX + "task_batch_add", {"tasks": tasks})
        return Text("Planned.")
    if not steps:
        return Call(PREFIX + "task_next", {})
    last = steps[-1]
    if last.tool == PREFIX + "task_next":
        found = TASK_LINE.match(last.result.strip())
        if found is None:
            return Call(PREFIX + "session_complete", {})
        return Call(PREFIX + "task_status", {"id": found.group(1), "status": "completed"})
    if last.tool == PREFIX + "task_status":
        return Call(PREFIX + "note_add", {"type": "learning", "content": f"done: {last.arguments['id']}"})
    if last.tool == PREFIX + "note_add":
        return Call(PREFIX + "iteration_summary", {"summary": f"Completed {last.arguments['content']}"})
    return Text("Done.")


class ServerStarts(threading.Thread):
    """The ``iteratr mcp`` processes of ``session`` seen while the build runs (sampled from /proc): the run's
    listener (``iteratr mcp --listen``), and the relays the agent starts, each with its ACP session (a turn of
    seconds here, so sampling every 20 ms sees each one); and whether any relay loaded the MCP SDK."""

    def __init__(self, session: str) -> None:
        super().__init__(daemon=True)
        self.session = session
        self.relays: set[int] = set()
        self.listeners: set[int] = set()
        self.relays_with_sdk: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    self._look(int(entry.name), entry.path)

    def _look(self, pid: int, proc: str) -> None:
        try:
            argv = Path(proc, "cmdline").read_bytes().split(b"\0")
            if "mcp" not in [a.decode(errors="replace") for a in argv] or not any(b"iteratr" in a for a in argv):
                return
            if f"ITERATR_SESSION={self.session}".encode() not in Path(proc, "environ").read_bytes().split(b"\0"):
                return
            if b"--listen" in argv:
                self.listeners.add(pid)
            else:
                self.relays.add(pid)
                if b"pydantic_core" in Path(proc, "maps").read_bytes():
                    self.relays_with_sdk.add(pid)
        except OSError:
            return


@pytest.fixture
def mcp_model() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(mcp_agent) as server:
        yield server


@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_opencode_keeps_the_session_through_the_typed_mcp_tools(
    repo: Path, opencode_binary: Path, mcp_model: ScriptedModelServer, tmp_path: Path
) -> None:
    opencode = make_opencode_env(opencode_binary, mcp_model.base_url, tmp_path / "opencode")
    (repo / "specs").mkdir()
    (repo / "specs" / f"{SESSION}.md").write_text(SPEC, encoding="utf-8")
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "spec")
    starts = ServerStarts(SESSION)
    starts.start()
    clock = time.monotonic()
    try:
        result = run_cli(
            "build",
            "--headless",
            "--spec",
            f"specs/{SESSION}.md",
            "--agent",
            opencode.agent_command,
            "--model",
            opencode.model,
            "--iterations",
            "5",
            cwd=repo,
            env=opencode.env,
            expect=None,
            timeout=BUILD_TIMEOUT,
        )
    finally:
        starts.done.set()
        starts.join(5)
    took = time.monotonic() - clock
    turns = mcp_model.turns
    steps = [[(s.tool, s.result[:200]) for s in t.steps] for t in turns]
    info = f"\n{result!r}\nmodel errors: {mcp_model.errors}\nsteps: {steps}"
    assert result.returncode == 0, info
    assert mcp_model.errors == [], info

    # The model was offered every typed tool under opencode's names, and the prompt taught those names.
    offered = set(turns[0].tools)
    assert {PREFIX + name for name in TOOLS} <= offered, f"offered: {sorted(offered)}{info}"
    for turn in turns:
        assert f"`{PREFIX}task_" in turn.prompt and " tool task-" not in turn.prompt, turn.prompt
    last_requests = {turn.prompt: turn for turn in turns}  # each ACP turn's last model request has all its steps
    calls = [step for turn in last_requests.values() for step in turn.steps]
    assert calls and all(step.tool.startswith(PREFIX) for step in calls), info

    # The malformed batch was refused by name, as an error result, and wrote nothing: the real batch got TAS-1.
    refused = next(step for step in calls if step.arguments == BAD_BATCH)
    assert "invalid arguments for task_batch_add: tasks[0].priority" in refused.result, info
    events = [json.loads(line) for line in (repo / ".iteratr" / SESSION / "events.jsonl").read_text().splitlines()]
    added = [e["data"] for e in events if e["type"] == "task.added"]
    assert [(t["id"], t["content"], t["priority"], t["depends_on"]) for t in added] == [
        ("TAS-1", "Write the first thing", 3, []),
        ("TAS-2", "Write the second thing", 3, ["TAS-1"]),
    ], info

    # The store shows every typed call's effect: both tasks completed, a note and a summary per task, complete.
    status = {t["id"]: t["status"] for t in added} | {
        e["data"]["id"]: e["data"]["status"] for e in events if e["type"] == "task.status"
    }
    assert status == {"TAS-1": "completed", "TAS-2": "completed"}, info
    notes = json.loads(run_cli("tool", "note-list", "--json", "-n", SESSION, cwd=repo).stdout)
    assert [(n["type"], n["content"]) for n in notes] == [("learning", "done: TAS-1"), ("learning", "done: TAS-2")]
    summaries = {e["iteration"]: e["data"]["summary"] for e in events if e["type"] == "iteration.summary"}
    assert sorted(summaries.values()) == ["Completed done: TAS-1", "Completed done: TAS-2"], info
    assert any(e["type"] == "session.completed" for e in events), info
    assert "the session is complete" in result.stdout, info

    # One server for the run, which imported the SDK; the agent started one relay per ACP session (iteration) at
    # most, each light (no SDK) and serving several calls: never a start per call.
    iterations = sum(e["type"] == "iteration.started" for e in events)
    assert len(starts.listeners) == 1, f"listeners: {starts.listeners}{info}"
    assert 1 <= len(starts.relays) <= iterations < len(calls), f"{starts.relays} for {iterations} iterations{info}"
    assert starts.relays_with_sdk == set(), info
    assert "left running past its turn" not in result.stdout, info  # the run's server is iteratr's, not escaped
    assert took < BUILD_TIMEOUT, took
