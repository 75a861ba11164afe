"""A whole two-task session through ``iteratr build --agent <preset>``, and the checks every preset's e2e test makes.

:func:`run_two_task_session` writes a two-task spec, starts the build in the background, saves a user message
into the inbox (the way an editor saves) as soon as iteration #1 starts, waits for the build, and checks:
planning loaded both tasks, each task was completed, one commit per iteration (with its trailers) and one work
file per task on the branch, the message reached exactly one later prompt and the event log, and the session
completed (exit 0). It returns what the usage checks need; those differ per agent (what each one records).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.conftest import CliResult, git, run_cli

from .model_server import PLANNING_MARKER, AgentTurn, Served

SESSION = "two"
SPEC = """# Two small things

Create one file per task.

- [ ] Create the alpha file
- [ ] Create the beta file
"""
TASKS = ["Create the alpha file", "Create the beta file"]
MESSAGE = "Please also keep the zebra-42 convention in mind"
BUILD_TIMEOUT = 120.0


class Server(Protocol):
    @property
    def turns(self) -> list[AgentTurn]: ...

    @property
    def served(self) -> list[Served]: ...

    @property
    def errors(self) -> list[str]: ...


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events in a JSONL log; a torn or unreadable line (the log is being appended to) is skipped."""
    events: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return events
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def save_like_an_editor(path: Path, text: str) -> None:
    """Write a temp file next to ``path`` with its current content plus ``text``, and rename it over ``path``."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".inbox-", suffix=".swp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(current.rstrip("\n") + "\n\n" + text + "\n")
    os.replace(tmp, path)


class BuildThread(threading.Thread):
    """``iteratr build`` run through ``run_cli`` in the background, keeping its result or exception."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float = BUILD_TIMEOUT) -> None:
        super().__init__(daemon=True)
        self.args, self.cwd, self.env, self.timeout = args, cwd, env, timeout
        self.result: CliResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_cli(*self.args, cwd=self.cwd, env=self.env, expect=None, timeout=self.timeout)
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def wait_for_iteration_start(events_path: Path, n: int, build: BuildThread, timeout: float) -> bool:
    """Poll the event log until iteration ``n`` has started; False if the build ended or time ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(events_path):
            if event.get("type") == "iteration.started" and (event.get("data") or {}).get("n") == n:
                return True
        if not build.is_alive():
            return False
        time.sleep(0.05)
    return False


def run_with_message(build: BuildThread, session_dir: Path, message: str, timeout: float) -> tuple[bool, float]:
    """Start ``build``, save ``message`` into the session's inbox (as an editor does) as soon as iteration #1 starts,
    and wait for the build to end: whether #1 started, and when the message was saved (a prompt carrying it came
    later)."""
    build.start()
    started = wait_for_iteration_start(session_dir / "events.jsonl", 1, build, timeout=timeout)
    saved_at = time.time()
    if started:
        save_like_an_editor(session_dir / "inbox.md", message)
    build.join(timeout + 30)
    return started, saved_at


def tasks_in(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The session's tasks as its event log has them (id, content, last status), in the order they were added; read
    from the log rather than ``task-list``, whose listing of done tasks is the store's business."""
    tasks: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "task.added":
            tasks[str(data["id"])] = {"id": data["id"], "content": data["content"], "status": data.get("status")}
        elif event.get("type") == "task.status" and str(data.get("id")) in tasks:
            tasks[str(data["id"])]["status"] = data["status"]
    return list(tasks.values())


def iteration_number(prompt: str) -> int:
    """The iteration a prompt was rendered for: its first line ends with ``Iteration: #N``."""
    return int(prompt.lstrip().splitlines()[0].rsplit("#", 1)[-1])


@dataclass(frozen=True)
class Ran:
    result: CliResult
    events: list[dict[str, Any]]
    ended: dict[int, dict[str, Any]]  # iteration number -> iteration.ended data
    served: dict[int, list[Served]]  # iteration number -> the agent-turn calls served for it
    info: str  # diagnostics for assertion messages


def run_two_task_session(repo: Path, agent: str, env: dict[str, str], server: Server, model: str | None = None) -> Ran:
    """The whole session (``model``: set with ``--model``, through the agent's own way of choosing one)."""
    (repo / "specs").mkdir()
    (repo / "specs" / f"{SESSION}.md").write_text(SPEC, encoding="utf-8")
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "add spec")
    base = git(repo, "rev-parse", "HEAD")
    session_dir = repo / ".iteratr" / SESSION
    events_path = session_dir / "events.jsonl"
    args = ["build", "--headless", "--spec", f"specs/{SESSION}.md", "--agent", agent, "--iterations", "6"]
    args += ["--model", model] if model else []
    build = BuildThread(args, cwd=repo, env=env)
    started, saved_at = run_with_message(build, session_dir, MESSAGE, BUILD_TIMEOUT)

    agent_log = session_dir / "agent.log"
    tail = agent_log.read_text(encoding="utf-8", errors="replace")[-3000:] if agent_log.exists() else "(none)"
    info = (
        f"\nbuild: {build.result!r}\nbuild error: {build.error!r}\nmodel requests: {[t.header for t in server.turns]}"
        f"\nmodel errors: {server.errors}\nagent.log tail:\n{tail}"
    )
    assert started, f"iteration #1 never started{info}"
    assert not build.is_alive(), f"build still running{info}"
    assert build.error is None and build.result is not None, info
    assert build.result.returncode == 0, info  # the session completed
    assert "stopped: the session is complete (2 tasks)" in build.result.stdout, info
    if model:
        assert f"\nmodel: {model}\n" in build.result.stdout, info  # set, and reported back by the agent
    assert server.errors == [], info

    # Planning loaded the spec's two tasks; each was completed.
    events = read_events(events_path)
    tasks = tasks_in(events)
    assert sorted(task["content"] for task in tasks) == TASKS, f"{tasks}{info}"
    assert [task["status"] for task in tasks] == ["completed"] * 2, f"{tasks}{info}"
    planning = [t for t in server.turns if PLANNING_MARKER in t.prompt and iteration_number(t.prompt) == 0]
    assert planning and any(" tool task-batch-add" in s.command for t in planning for s in t.steps), info

    # One commit per iteration, each with its trailers; one work file per task on the branch.
    numbers = sorted(int(e["data"]["n"]) for e in events if e.get("type") == "iteration.started")
    commits = git(repo, "rev-list", f"{base}..iteratr/{SESSION}").split()
    assert len(commits) == len(numbers), f"{len(commits)} commits for iterations {numbers}{info}"
    trailers = sorted(
        int(git(repo, "log", "-1", "--format=%(trailers:key=Iteratr-Iteration,valueonly)", c).strip()) for c in commits
    )
    assert trailers == numbers, f"{trailers}{info}"
    tree = git(repo, "ls-tree", "-r", "--name-only", f"iteratr/{SESSION}").splitlines()
    assert sorted(p for p in tree if p.startswith("work/")) == sorted(f"work/{t['id']}.txt" for t in tasks), info
    done_by = {
        e["data"]["id"]: e["iteration"]
        for e in events
        if e.get("type") == "task.status" and (e.get("data") or {}).get("status") == "completed"
    }
    assert sorted(done_by.values()) == [1, 2], f"one task per main iteration: {done_by}{info}"

    # The user's message reached exactly one later prompt, and the event log.
    carrying = [t for t in server.turns if MESSAGE in t.prompt]
    assert carrying, f"no prompt carried the inbox message{info}"
    assert all(t.received_at >= saved_at for t in carrying), info
    assert len({t.header for t in carrying}) == 1, f"message delivered to several iterations{info}"
    assert any(MESSAGE in json.dumps(e.get("data")) for e in events if e.get("type") == "user.message"), info

    ended = {int(e["data"]["n"]): e["data"] for e in events if e.get("type") == "iteration.ended"}
    served: dict[int, list[Served]] = {}
    for call in server.served:
        if not call.title:
            served.setdefault(iteration_number(call.prompt), []).append(call)
    assert sorted(served) == sorted(ended) == numbers, f"served {sorted(served)} ended {sorted(ended)}{info}"
    return Ran(build.result, events, ended, served, info)
