"""A fake agent at the loop's seam (``iteratr.agent.seam.Agent``), for in-process loop tests.

It runs scripted behaviours in the test's own process, the way ``iteratr.agent.scripted`` does over
ACP: the k-th prompt of a ``Script`` (counted across runs and restarts) is answered by its k-th mode,
the last one repeating. ``follow`` calls the session's tool functions (``iteratr.session.ops``)
directly against the store, as the real agent's ``$ITERATR_BIN tool ...`` calls would. A mode may
also be any ``async (agent, prompt) -> TurnResult`` function, for a test that must act mid-turn.

What goes over the wire is tested against the real protocol in tests/agent; this fake keeps that
protocol's outward behaviour: the same errors, stop reasons, timeout wording and events.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from iteratr.agent.events import (
    AgentDied,
    AgentInfo,
    AgentText,
    AgentThought,
    ModelError,
    PermissionEvent,
    PlanEvent,
    TimeoutKind,
    ToolCallEvent,
    TurnFailed,
    TurnResult,
    TurnTimeout,
    Usage,
    UsageEvent,
    timeout_message,
)
from iteratr.agent.seam import AgentLaunch
from iteratr.errors import UsageError
from iteratr.session import ops
from iteratr.session.events import make_event
from iteratr.session.store import Store

BIG = 1024 * 1024
DONE_STATES = {"completed", "cancelled", "blocked"}
Mode = str | Callable[["FakeAgent", str], Awaitable[TurnResult]]


class Script:
    """The behaviours of every agent a test's runs start, and what those agents were given."""

    def __init__(self, *modes: Mode, models: list[str] | None = None, default_model: str | None = None) -> None:
        self.modes = list(modes) or ["follow"]
        self.models = models or []
        self.default_model = default_model or (self.models[0] if self.models else None)
        self.prompts: list[str] = []
        self.launches: list[AgentLaunch] = []
        self.agents: list[FakeAgent] = []
        self.starts = 0  # agent (re)starts: after a crash the next turn starts it again

    def __call__(self, launch: AgentLaunch) -> FakeAgent:
        """The ``AgentFactory`` the loop is given."""
        self.launches.append(launch)
        agent = FakeAgent(self, launch)
        self.agents.append(agent)
        return agent

    def next_mode(self) -> Mode:
        return self.modes[min(len(self.prompts) - 1, len(self.modes) - 1)]


class FakeAgent:
    def __init__(self, script: Script, launch: AgentLaunch) -> None:
        self.script = script
        self.launch = launch
        self.alive = False
        self.closed = False
        self.killed = False
        self.turn_running = asyncio.Event()  # set while a turn runs: a test can act "during the turn"
        self._cancelled = asyncio.Event()
        self._tool_ids = 0
        self._turn_tools = 0
        self.iteration_timeout: float | None = None
        self.idle_timeout: float | None = None
        self.model: str | None = None

    # -- the seam ---------------------------------------------------------------------------------

    async def start(self) -> AgentInfo:
        if not self.alive:
            self.alive = True
            self.script.starts += 1
        return AgentInfo("fake-agent", "1.0")

    async def run_turn(self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None) -> TurnResult:
        await self.start()
        self.script.prompts.append(prompt)
        self._cancelled = asyncio.Event()
        self._turn_tools = 0
        self.iteration_timeout, self.idle_timeout = iteration_timeout, idle_timeout
        self.model = self._apply_model()
        mode = self.script.next_mode()
        self.turn_running.set()
        try:
            if isinstance(mode, str):
                handler: Callable[[str], Awaitable[TurnResult]] = getattr(self, "_" + mode.replace("-", "_"))
                return await handler(prompt)
            return await mode(self, prompt)
        finally:
            self.turn_running.clear()

    async def cancel(self) -> None:
        self._cancelled.set()

    async def close(self) -> None:
        self.alive, self.closed = False, True

    def kill_now(self) -> None:
        self.alive, self.killed = False, True

    # -- helpers for modes ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        env = self.launch.env
        return Store(Path(env["ITERATR_DATA_DIR"]), env["ITERATR_SESSION"])

    @property
    def cwd(self) -> Path:
        return self.launch.cwd

    def say(self, text: str) -> str:
        self.launch.on_event(AgentText(text))
        return text

    def tool(self, title: str, status: str = "completed", exit_status: int | None = None, output: str = "") -> None:
        self._tool_ids += 1
        self._turn_tools += 1
        call = f"call-{self._tool_ids}"
        self.launch.on_event(ToolCallEvent(call, title, "execute", "in_progress", False))
        self.launch.on_event(ToolCallEvent(call, title, "execute", status, True, exit_status, output))

    def result(self, text: str = "", stop_reason: str = "end_turn", usage: Usage | None = None) -> TurnResult:
        return TurnResult(stop_reason, text, self._turn_tools, usage, self.model, f"fake-{len(self.script.prompts)}")

    async def wait_for_cancel(self) -> TurnResult:
        """Hang like an agent that honours ``session/cancel``, until a cancel or the turn's timeouts."""
        limits: list[tuple[float, TimeoutKind]] = []
        if self.iteration_timeout and self.iteration_timeout > 0:
            limits.append((self.iteration_timeout, "total"))
        if self.idle_timeout and self.idle_timeout > 0:
            limits.append((self.idle_timeout, "idle"))
        at: float | None = None
        kind: TimeoutKind = "total"
        if limits:
            at, kind = min(limits)
        try:
            await asyncio.wait_for(self._cancelled.wait(), at)
        except TimeoutError:
            raise TurnTimeout(
                timeout_message(kind, self.iteration_timeout, self.idle_timeout), kind=kind, partial=self.result()
            ) from None
        return self.result(stop_reason="cancelled")

    def _apply_model(self) -> str | None:
        wanted, offered = self.launch.model, self.script.models
        if wanted is None or wanted == self.script.default_model:
            return self.script.default_model
        if not offered:
            raise ModelError(
                f"agent offers no model choice, so model {wanted!r} cannot be set; "
                "run without a model or configure it in the agent",
                models=[],
            )
        if wanted not in offered:
            raise ModelError(
                f"agent refused model {wanted!r} (Invalid params: model not found: {wanted}); "
                f"models offered: {', '.join(offered)}",
                models=list(offered),
            )
        return wanted

    # -- modes ------------------------------------------------------------------------------------

    async def _ok(self, prompt: str) -> TurnResult:
        return self.result(self.say("ok"))

    async def _empty(self, prompt: str) -> TurnResult:
        return self.result()

    async def _crash(self, prompt: str) -> TurnResult:
        self.alive = False
        partial = self.result(self.say("about to crash\n"), "failed")
        raise AgentDied(
            "agent exited with status 3 during the turn; stderr: scripted agent: crashing on purpose",
            returncode=3,
            partial=partial,
        )

    async def _fail(self, prompt: str) -> TurnResult:
        raise TurnFailed("agent answered with an error: Internal error: no credentials", partial=self.result())

    async def _hang(self, prompt: str) -> TurnResult:
        return await self.wait_for_cancel()

    async def _bigline(self, prompt: str) -> TurnResult:
        return self.result(self.say("<" + "x" * (BIG - 2) + ">"))

    async def _max_tokens(self, prompt: str) -> TurnResult:
        return self.result(self.say("I ran out of tokens"), "max_tokens")

    async def _refusal(self, prompt: str) -> TurnResult:
        return self.result(self.say("I will not do that"), "refusal")

    async def _usage(self, prompt: str) -> TurnResult:
        usage = Usage(1000, 200, 1200, 0.0123, "USD")
        self.launch.on_event(UsageEvent(Usage(None, None, None, 0.0123, "USD")))
        return self.result(self.say("counting tokens"), usage=usage)

    async def _chatty(self, prompt: str) -> TurnResult:
        self.launch.on_event(AgentThought("thinking it over"))
        self.launch.on_event(PlanEvent(["first", "second"]))
        self.tool("ls -la")
        self.tool("false", "failed")
        return self.result(self.say("all done\n"))

    async def _failing_tool(self, prompt: str) -> TurnResult:
        """A command that printed 8 lines and exited 3, reported "completed" as opencode reports it."""
        self.tool("sh run-tests.sh", "completed", 3, "".join(f"test {i} failed\n" for i in range(1, 9)))
        return self.result(self.say("the tests failed\n"))

    async def _permission(self, prompt: str) -> TurnResult:
        self.launch.on_event(PermissionEvent("touch permission.txt", "allow_once", "default policy"))
        self.tool("touch permission.txt")
        return self.result(self.say("permission: allow-once"))

    async def _env(self, prompt: str) -> TurnResult:
        env: Mapping[str, str] = self.launch.env
        return self.result(self.say("\n".join(f"{name}={env.get(name, '<unset>')}" for name in prompt.split())))

    async def _commit(self, prompt: str) -> TurnResult:
        (self.cwd / "agent-commit.txt").write_text("committed by the agent\n", encoding="utf-8")
        for args in (["add", "agent-commit.txt"], ["commit", "--quiet", "-m", "the agent's own commit"]):
            subprocess.run(["git", *args], cwd=self.cwd, check=True, stdin=subprocess.DEVNULL)
        return self.result(self.say("committed agent-commit.txt myself"))

    async def _detach(self, prompt: str) -> TurnResult:
        (self.cwd / "detached.txt").write_text("written on a detached HEAD\n", encoding="utf-8")
        subprocess.run(["git", "switch", "--quiet", "--detach"], cwd=self.cwd, check=True, stdin=subprocess.DEVNULL)
        return self.result(self.say("wandered off to a detached HEAD"))

    async def _follow(self, prompt: str) -> TurnResult:
        """A diligent agent: plans the spec's ``- [ ]`` lines, then does one task per prompt."""
        store, said = self.store, []
        if "Messages from the user" in prompt:
            said.append(self.say("Noted user message\n"))
            for content in re.findall(r"(?im)^\s*add a task:\s*(.+?)\s*$", prompt):
                self.tool("iteratr tool task-add")
                ops.task_add(store, [{"content": content, "priority": 1}])
        state = store.load()
        if not state.tasks:
            items = re.findall(r"^\s*[-*] \[ \] (.+?)\s*$", prompt, re.MULTILINE)
            if not items:
                return self.result(self.say("The spec has no '- [ ]' task lines, so there is nothing to plan.\n"))
            self.tool("iteratr tool task-batch-add")
            ops.task_add(store, [{"content": item, "priority": max(0, 4 - i)} for i, item in enumerate(items)])
            return self.result(self.say(f"Planned {len(items)} tasks from the spec.\n"))
        task, _why = ops.task_next(state)
        if task is not None:
            said.append(self.say(f"Working on {task.id}: {task.content}\n"))
            ops.task_status(store, task.id, "in_progress")
            slug = re.sub(r"[^a-z0-9]+", "-", task.content.lower()).strip("-")[:60] or task.id.lower()
            (self.cwd / "work").mkdir(exist_ok=True)
            (self.cwd / "work" / f"{slug}.txt").write_text(task.content + "\n", encoding="utf-8")
            self.tool(f"write work/{slug}.txt")
            ops.task_status(store, task.id, "completed")
            ops.iteration_summary(store, f"Completed {task.id}: {task.content}")
            said.append(self.say(f"Done with {task.id}.\n"))
            state = store.load()
            if ops.task_next(state)[0] is not None or any(t.status not in DONE_STATES for t in state.tasks.values()):
                return self.result("".join(said))
        try:
            ops.session_complete(store)
        except UsageError as exc:
            return self.result(self.say(f"`session-complete` failed: {exc}\n"))
        return self.result("".join(said) + self.say("Every task is done; session marked complete.\n"))

    # -- misbehaviours (the guard rails' tests, tests/run/test_guards_loop.py) ----------------------

    def _planned(self, prompt: str) -> TurnResult | None:
        """Plan the spec's ``- [ ]`` lines if the session has no tasks yet (as ``follow`` does); else None."""
        if self.store.load().tasks:
            return None
        items = re.findall(r"^\s*[-*] \[ \] (.+?)\s*$", prompt, re.MULTILINE)
        self.tool("iteratr tool task-batch-add")
        ops.task_add(self.store, [{"content": item, "priority": max(0, 4 - i)} for i, item in enumerate(items)])
        return self.result(self.say(f"Planned {len(items)} tasks from the spec.\n"))

    async def _spin(self, prompt: str) -> TurnResult:
        """Sets the first open task in_progress, writes a summary, never completes anything."""
        planned = self._planned(prompt)
        if planned is not None:
            return planned
        task = self.store.load().open_tasks()[0]
        self.tool("iteratr tool task-status")
        ops.task_status(self.store, task.id, "in_progress")
        ops.iteration_summary(self.store, f"Made good headway on {task.id}")
        return self.result(self.say(f"Still working on {task.id}.\n"))

    async def _disciplined(self, prompt: str) -> TurnResult:
        """One task per turn, done properly, and never a ``session-complete``: iteratr is to see the end itself."""
        planned = self._planned(prompt)
        if planned is not None:
            return planned
        task, _why = ops.task_next(self.store.load())
        if task is None:
            return self.result(self.say("Nothing left to do.\n"))
        self._work_on(task.id, task.content)
        return self.result(self.say(f"Done with {task.id}.\n"))

    async def _finish_all(self, prompt: str) -> TurnResult:
        """Completes every open task in one turn and never calls ``session-complete``."""
        planned = self._planned(prompt)
        if planned is not None:
            return planned
        for task in self.store.load().open_tasks():
            self._work_on(task.id, task.content)
        return self.result(self.say("All tasks done; I did not call session-complete.\n"))

    async def _forge(self, prompt: str) -> TurnResult:
        """Appends a ``session.completed`` line to the log by hand, with every task still open."""
        planned = self._planned(prompt)
        if planned is not None:
            return planned
        line = json.dumps(make_event("session.completed", {}, self.store.load().current_iteration))
        with open(self.store.events_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        self.tool("echo '{...session.completed...}' >> events.jsonl")
        return self.result(self.say("Marked the session complete myself.\n"))

    async def _block(self, prompt: str) -> TurnResult:
        """Marks every open task blocked, each with a ``stuck`` note naming it."""
        planned = self._planned(prompt)
        if planned is not None:
            return planned
        for task in self.store.load().open_tasks():
            ops.note_add(self.store, f"{task.id} needs an API key from a person", "stuck")
            ops.task_status(self.store, task.id, "blocked")
        return self.result(self.say("Everything is blocked.\n"))

    def _work_on(self, task_id: str, content: str) -> None:
        ops.task_status(self.store, task_id, "in_progress")
        slug = re.sub(r"[^a-z0-9]+", "-", content.lower()).strip("-")[:60] or task_id.lower()
        (self.cwd / "work").mkdir(exist_ok=True)
        (self.cwd / "work" / f"{slug}.txt").write_text(content + "\n", encoding="utf-8")
        self.tool(f"write work/{slug}.txt")
        ops.task_status(self.store, task_id, "completed")
        ops.iteration_summary(self.store, f"Completed {task_id}: {content}")
