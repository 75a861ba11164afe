"""A scripted ACP agent, built on the SDK's agent side, for ``iteratr demo``, tests and benchmarks.

Run as ``python -m iteratr.agent.scripted [--mode MODE] [--script m1,m2,...] [--state-file F]
[--models a,b --default-model a]``. Each prompt is answered by one mode; with ``--script`` the
k-th prompt (counted across process restarts in ``--state-file``) uses the k-th mode, the last
one repeating. If ``FAKE_AGENT_PROMPT_LOG`` is set, every prompt received is appended there,
followed by a ``=====`` line.

Modes:
  follow       a diligent agent: plans the spec's ``- [ ]`` lines, then does one task per
               prompt through ``$ITERATR_BIN tool ...`` and completes the session at the end;
               "Add a task: ..." lines in user messages add tasks
  ok           replies "ok"                      empty      ends the turn saying nothing
  crash        dies (exit 3) mid-prompt          hang       waits until cancelled
  hang-hard    ignores cancel and SIGTERM, with a ``sleep`` child in its process group
  bigline      one 1 MiB message chunk           max_tokens / refusal: text, then that stop reason
  permission   asks permission for a tool call   usage      reports tokens and cost
  chatty       a thought, a plan, a tool call, text
  env          replies NAME=value for each variable name in the prompt
  echo-prompt  replies "ok" (the prompt log above does the work)
  commit       writes agent-commit.txt and commits it itself (``git commit``), then says so
  detach       writes detached.txt and leaves the checkout on a detached HEAD (``git switch --detach``)
  disciplined  like follow, but never calls ``session-complete`` (iteratr is to see the end itself)
  spin         plans, then sets the first open task in_progress and writes a summary, forever
  forge        plans, then appends a ``session.completed`` line to events.jsonl by hand, tasks open
  failing-tool runs a command that prints 8 lines and exits 3, reported "completed" with rawOutput exit 3
  and the misbehaving modes of ``iteratr.agent.misbehave`` (damaged history, escaping processes, floods)
  and the permission-asking modes of ``iteratr.agent.asking`` (an edit, a command, a fetch: done only if allowed)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import acp
from acp import schema as s

from iteratr.agent import asking, misbehave

MODES = [
    "follow",
    "ok",
    "empty",
    "crash",
    "hang",
    "hang-hard",
    "bigline",
    "max_tokens",
    "refusal",
    "permission",
    "usage",
    "chatty",
    "env",
    "echo-prompt",
    "commit",
    "detach",
    "disciplined",
    "spin",
    "forge",
    "failing-tool",
    *misbehave.MODES,
    *asking.MODES,
]
BIG = 1024 * 1024
DONE_STATES = {"completed", "cancelled", "blocked"}


class ScriptedAgent:
    def __init__(self, script: list[str], state_file: Path | None, models: list[str], default_model: str | None):
        self._script = script
        self._state_file = state_file
        self._models = models
        self._default_model = default_model or (models[0] if models else None)
        self._client: Any = None
        self._sessions: dict[str, dict[str, Any]] = {}
        self._cancelled: dict[str, asyncio.Event] = {}
        self._prompts = 0
        self._tool_ids = 0

    def on_connect(self, conn: Any) -> None:
        self._client = conn

    # -- protocol ---------------------------------------------------------------------------------------

    async def initialize(self, protocol_version: int, **kwargs: Any) -> s.InitializeResponse:
        try:
            from iteratr import __version__ as version
        except ImportError:  # run by file path, without iteratr on sys.path
            version = "unknown"
        return s.InitializeResponse(
            protocol_version=acp.PROTOCOL_VERSION,
            agent_info=s.Implementation(name="iteratr-scripted-agent", version=version),
        )

    async def new_session(self, cwd: str, **kwargs: Any) -> s.NewSessionResponse:
        session_id = f"scripted-{os.getpid()}-{len(self._sessions) + 1}"
        self._sessions[session_id] = {"cwd": cwd, "model": self._default_model}
        self._cancelled[session_id] = asyncio.Event()
        return s.NewSessionResponse(session_id=session_id, config_options=self._config_options(session_id))

    async def set_config_option(
        self, config_id: str, session_id: str, value: str | bool, **kwargs: Any
    ) -> s.SetSessionConfigOptionResponse:
        if config_id != "model" or not self._models or session_id not in self._sessions:
            raise acp.RequestError.invalid_params({"details": f"unknown config option {config_id!r}"})
        if value not in self._models:
            raise acp.RequestError(-32602, f"Invalid params: model not found: {value}", {"modelId": value})
        self._sessions[session_id]["model"] = value
        return s.SetSessionConfigOptionResponse(config_options=self._config_options(session_id) or [])

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        if session_id in self._cancelled:
            self._cancelled[session_id].set()

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> s.PromptResponse:
        text = "".join(getattr(block, "text", "") for block in prompt)
        log = os.environ.get("FAKE_AGENT_PROMPT_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(text + "\n=====\n")
        mode = self._next_mode()
        if mode in misbehave.MODES:
            stop_reason = cast(s.StopReason, await misbehave.run(self, mode, session_id, text))
        elif mode in asking.MODES:
            stop_reason = cast(s.StopReason, await asking.run(self, mode, session_id, text))
        else:
            stop_reason = await getattr(self, "_" + mode.replace("-", "_"))(session_id, text)
        usage = None
        if mode == "usage":
            usage = s.Usage(input_tokens=1000, output_tokens=200, total_tokens=1200)
        return s.PromptResponse(stop_reason=stop_reason, usage=usage)

    # -- helpers ----------------------------------------------------------------------------------------

    def _config_options(self, session_id: str) -> list[Any] | None:
        if not self._models:
            return None
        choices = [s.SessionConfigSelectOption(value=m, name=m) for m in self._models]
        return [
            s.SessionConfigOptionSelect(
                id="model",
                name="Model",
                category="model",
                type="select",
                current_value=self._sessions[session_id]["model"],
                options=choices,
            )
        ]

    def _next_mode(self) -> str:
        if self._state_file is not None:
            try:
                count = int(self._state_file.read_text() or 0)
            except FileNotFoundError:
                count = 0
            self._state_file.write_text(str(count + 1))
        else:
            count = self._prompts
        self._prompts += 1
        return self._script[min(count, len(self._script) - 1)]

    async def _say(self, session_id: str, text: str) -> None:
        await self._client.session_update(session_id, acp.update_agent_message_text(text))

    async def _tool_call(self, session_id: str, title: str, status: s.ToolCallStatus, output: str = "") -> str:
        self._tool_ids += 1
        tool_id = f"call-{self._tool_ids}"
        await self._client.session_update(
            session_id,
            acp.start_tool_call(
                tool_id, title, kind="execute", status="pending" if status == "pending" else "in_progress"
            ),
        )
        if status in ("completed", "failed"):
            await self._finish_tool(session_id, tool_id, status, output)
        return tool_id

    async def _finish_tool(
        self, session_id: str, tool_id: str, status: s.ToolCallStatus, output: str, exit_status: int | None = None
    ) -> None:
        """End a tool call. With an exit status, as opencode's bash tool does: rawOutput {"output", "metadata":
        {"exit"}}, and status "completed" whatever the command's exit (the client must read the exit status)."""
        content = [acp.tool_content(acp.text_block(output))] if output else None
        raw = {"output": output, "metadata": {"exit": exit_status}} if exit_status is not None else None
        await self._client.session_update(
            session_id, acp.update_tool_call(tool_id, status=status, content=content, raw_output=raw)
        )

    # -- modes ------------------------------------------------------------------------------------------

    async def _ok(self, sid: str, text: str) -> str:
        await self._say(sid, "ok")
        return "end_turn"

    _echo_prompt = _ok

    async def _empty(self, sid: str, text: str) -> str:
        return "end_turn"

    async def _crash(self, sid: str, text: str) -> str:
        await self._say(sid, "about to crash\n")
        print("scripted agent: crashing on purpose", file=sys.stderr, flush=True)
        os._exit(3)

    async def _hang(self, sid: str, text: str) -> str:
        await self._cancelled[sid].wait()
        return "cancelled"

    async def _hang_hard(self, sid: str, text: str) -> str:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        print(f"scripted agent: child pid {child.pid}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
        return "end_turn"

    async def _bigline(self, sid: str, text: str) -> str:
        await self._say(sid, "<" + "x" * (BIG - 2) + ">")
        return "end_turn"

    async def _max_tokens(self, sid: str, text: str) -> str:
        await self._say(sid, "I ran out of tokens")
        return "max_tokens"

    async def _refusal(self, sid: str, text: str) -> str:
        await self._say(sid, "I will not do that")
        return "refusal"

    async def _permission(self, sid: str, text: str) -> str:
        tool_id = await self._tool_call(sid, "touch permission.txt", "pending")
        options = [
            s.PermissionOption(option_id=kind.replace("_", "-"), name=kind, kind=kind)
            for kind in ("allow_once", "allow_always", "reject_once")
        ]
        answer = await self._client.request_permission(
            session_id=sid,
            tool_call=s.ToolCallUpdate(tool_call_id=tool_id, title="touch permission.txt"),
            options=options,
        )
        outcome = answer.outcome
        chosen = outcome.option_id if isinstance(outcome, s.AllowedOutcome) else "cancelled"
        await self._finish_tool(sid, tool_id, "completed", "")
        await self._say(sid, f"permission: {chosen}")
        return "end_turn"

    async def _usage(self, sid: str, text: str) -> str:
        await self._say(sid, "counting tokens")
        cost = s.Cost(amount=0.0123, currency="USD")
        await self._client.session_update(
            sid, s.UsageUpdate(session_update="usage_update", used=1200, size=200000, cost=cost)
        )
        return "end_turn"

    async def _chatty(self, sid: str, text: str) -> str:
        await self._client.session_update(sid, acp.update_agent_thought_text("thinking it over"))
        await self._client.session_update(sid, acp.update_plan([acp.plan_entry("first"), acp.plan_entry("second")]))
        await self._tool_call(sid, "ls -la", "completed", "total 0")
        await self._tool_call(sid, "false", "failed", "exit 1")
        await self._say(sid, "all done\n")
        return "end_turn"

    async def _failing_tool(self, sid: str, text: str) -> str:
        """Runs a command that prints 8 lines and exits 3, reported as opencode reports it ("completed", exit 3)."""
        script = "for i in 1 2 3 4 5 6 7 8; do echo test $i failed; done; exit 3"
        tool_id = await self._tool_call(sid, "sh run-tests.sh", "in_progress")
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", script, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        await self._finish_tool(sid, tool_id, "completed", out.decode(errors="replace"), proc.returncode)
        await self._say(sid, "the tests failed\n")
        return "end_turn"

    async def _commit(self, sid: str, text: str) -> str:
        cwd = Path(self._sessions[sid]["cwd"])
        (cwd / "agent-commit.txt").write_text("committed by the agent\n", encoding="utf-8")
        for args in (["add", "agent-commit.txt"], ["commit", "--quiet", "-m", "the agent's own commit"]):
            subprocess.run(["git", *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL)
        await self._say(sid, "committed agent-commit.txt myself")
        return "end_turn"

    async def _detach(self, sid: str, text: str) -> str:
        cwd = Path(self._sessions[sid]["cwd"])
        (cwd / "detached.txt").write_text("written on a detached HEAD\n", encoding="utf-8")
        subprocess.run(["git", "switch", "--quiet", "--detach"], cwd=cwd, check=True, stdin=subprocess.DEVNULL)
        await self._say(sid, "wandered off to a detached HEAD")
        return "end_turn"

    async def _env(self, sid: str, text: str) -> str:
        lines = [f"{name}={os.environ.get(name, '<unset>')}" for name in text.split()]
        await self._say(sid, "\n".join(lines))
        return "end_turn"

    async def _disciplined(self, sid: str, text: str) -> str:
        return await self._follow(sid, text, complete=False)

    async def _spin(self, sid: str, text: str) -> str:
        cwd = Path(self._sessions[sid]["cwd"])
        ok, tasks = await self._run_tool(sid, cwd, "task-list", "--json")
        if not ok or not tasks:
            return await self._follow(sid, text)  # plan first
        task = next(t for t in tasks if t.get("status") not in DONE_STATES)
        await self._run_tool(sid, cwd, "task-status", "--id", str(task["id"]), "--status", "in_progress")
        await self._run_tool(sid, cwd, "iteration-summary", "--summary", f"Made good headway on {task['id']}")
        await self._say(sid, f"Still working on {task['id']}.\n")
        return "end_turn"

    async def _forge(self, sid: str, text: str) -> str:
        cwd = Path(self._sessions[sid]["cwd"])
        ok, tasks = await self._run_tool(sid, cwd, "task-list", "--json")
        if not ok or not tasks:
            return await self._follow(sid, text)  # plan first
        log = cwd / os.environ.get("ITERATR_DATA_DIR", ".iteratr") / os.environ["ITERATR_SESSION"] / "events.jsonl"
        line = {"v": 1, "ts": "2026-01-01T00:00:00.000000Z", "type": "session.completed", "iteration": 0, "data": {}}
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        await self._say(sid, "Marked the session complete myself.\n")
        return "end_turn"

    async def _follow(self, sid: str, text: str, *, complete: bool = True) -> str:
        cwd = Path(self._sessions[sid]["cwd"])
        if "ITERATR_BIN" not in os.environ:
            await self._say(sid, "ITERATR_BIN is not set, so I cannot reach the task tools.\n")
            return "end_turn"
        if "Messages from the user" in text:
            await self._say(sid, "Noted user message\n")
            # Like a real agent, act on what the user asked: "Add a task: ..." adds one.
            for content in re.findall(r"(?im)^\s*add a task:\s*(.+?)\s*$", text):
                if not (await self._run_tool(sid, cwd, "task-add", "--content", content, "--priority", "1"))[0]:
                    return "end_turn"
        await self._say(sid, "Let me look at the task list.\n")
        ok, tasks = await self._run_tool(sid, cwd, "task-list", "--json")
        if not ok:
            return "end_turn"
        if not tasks:
            items = re.findall(r"^\s*[-*] \[ \] (.+?)\s*$", text, re.MULTILINE)
            if not items:
                await self._say(sid, "The spec has no '- [ ]' task lines, so there is nothing to plan.\n")
                return "end_turn"
            batch = [{"content": item, "priority": max(0, 4 - i)} for i, item in enumerate(items)]
            ok, _ = await self._run_tool(sid, cwd, "task-batch-add", "--tasks", json.dumps(batch), "--json")
            if ok:
                await self._say(sid, f"Planned {len(batch)} tasks from the spec.\n")
            return "end_turn"
        ok, task = await self._run_tool(sid, cwd, "task-next", "--json")
        if not ok:
            return "end_turn"
        if task:
            if not await self._do_task(sid, cwd, task):
                return "end_turn"
            ok, task = await self._run_tool(sid, cwd, "task-next", "--json")
            if not ok or task or not complete:
                return "end_turn"  # more to do: the next iteration picks it up
            ok, tasks = await self._run_tool(sid, cwd, "task-list", "--json")
            if not ok or any(t.get("status") not in DONE_STATES for t in tasks):
                return "end_turn"
        ok, _ = await self._run_tool(sid, cwd, "session-complete")
        if ok:
            await self._say(sid, "Every task is done; session marked complete.\n")
        return "end_turn"

    async def _do_task(self, sid: str, cwd: Path, task: dict[str, Any]) -> bool:
        task_id, content = str(task["id"]), str(task["content"])
        await self._say(sid, f"Working on {task_id}: {content}\n")
        ok, _ = await self._run_tool(sid, cwd, "task-status", "--id", task_id, "--status", "in_progress")
        if not ok:
            return False
        slug = re.sub(r"[^a-z0-9]+", "-", content.lower()).strip("-")[:60] or task_id.lower()
        tool_id = await self._tool_call(sid, f"write work/{slug}.txt", "in_progress")
        (cwd / "work").mkdir(exist_ok=True)
        (cwd / "work" / f"{slug}.txt").write_text(content + "\n", encoding="utf-8")
        await self._finish_tool(sid, tool_id, "completed", "")
        for args in (
            ("task-status", "--id", task_id, "--status", "completed"),
            ("iteration-summary", "--summary", f"Completed {task_id}: {content}"),
        ):
            ok, _ = await self._run_tool(sid, cwd, *args)
            if not ok:
                return False
        await self._say(sid, f"Done with {task_id}.\n")
        return True

    async def _run_tool(self, sid: str, cwd: Path, *args: str) -> tuple[bool, Any]:
        """Run ``$ITERATR_BIN tool ARGS`` as the agent's shell would: (succeeded, parsed JSON with --json)."""
        title = shlex.join(["iteratr", "tool", *args])
        tool_id = await self._tool_call(sid, title, "in_progress")
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(os.environ["ITERATR_BIN"]),
            "tool",
            *args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        output = (out + err).decode(errors="replace")
        await self._finish_tool(sid, tool_id, "completed", output, proc.returncode)
        if proc.returncode != 0:
            await self._say(sid, f"`{title}` failed: {err.decode(errors='replace').strip()}\n")
            return False, None
        return True, json.loads(out) if "--json" in args else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m iteratr.agent.scripted",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=MODES, default="follow")
    parser.add_argument("--script", help="comma-separated modes, one per prompt; the last repeats")
    parser.add_argument("--state-file", type=Path, help="keeps the prompt count across restarts")
    parser.add_argument("--models", default="", help="comma-separated models to offer as a config option")
    parser.add_argument("--default-model")
    args = parser.parse_args(argv)
    script = args.script.split(",") if args.script else [args.mode]
    unknown = [m for m in script if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    models = [m for m in args.models.split(",") if m]
    agent = ScriptedAgent(script, args.state_file, models, args.default_model)
    asyncio.run(acp.run_agent(cast(acp.Agent, agent)))


if __name__ == "__main__":
    main()
