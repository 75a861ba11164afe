"""A scripted OpenAI-compatible chat-completions server, so the real opencode can run offline in tests.

opencode (pointed at this server through its config, see ``opencode_env``) sends ``POST /v1/chat/completions``
with ``stream: true``. Two kinds of request arrive:

- title requests (no ``tools``): opencode wants a session title; they get a short text answer;
- agent turns (with ``tools``): the last ``user`` message is iteratr's prompt, and the assistant ``tool_calls``
  and ``tool`` messages after it are the steps taken so far in this turn. A *script* (a function of that
  :class:`AgentTurn`) decides the next step: one call of opencode's ``bash`` tool, or a text answer, which ends
  the turn.

Every agent-turn request is recorded (:attr:`ScriptedModelServer.turns`) so tests can assert on what the model
received, and every answered call with the usage reported for it (:attr:`ScriptedModelServer.served`). That usage
varies per call, a function of the request's size and of the answer (:func:`usage_for`), so a count that took only
one call of a turn, or one call times the number of calls, would not match the sum of what was served.

The default script, :func:`diligent_agent`, drives iteratr's tool CLI the way a careful agent would:
load the spec's tasks when planning, otherwise do one task per iteration and mark the session complete when no
task is left.

The server is stdlib ``http.server`` on 127.0.0.1 with a random port, served from a daemon thread; ``stop()``
(or leaving the ``with`` block) shuts it down. It is bounded: request bodies are capped, and a turn that takes
more than :data:`MAX_STEPS_PER_TURN` steps is ended with a text answer instead of looping forever.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .local_server import LocalServer

# The planning template says this in its first lines; the main template never does.
PLANNING_MARKER = "PLANNING"
# The spec's task lines, as written in the test specs.
SPEC_TASK_RE = re.compile(r"^\s*- \[ \] (?P<content>.+?)\s*$", re.MULTILINE)
# A turn that reaches this many tool results is ended, so a confused script cannot loop forever.
MAX_STEPS_PER_TURN = 12
MAX_BODY_BYTES = 16 * 1024 * 1024
MODEL_ID = "scripted"


@dataclass(frozen=True)
class Step:
    """One tool call the model made earlier in this turn, with the tool's answer."""

    tool: str
    arguments: dict[str, Any]
    result: str

    @property
    def command(self) -> str:
        return str(self.arguments.get("command", ""))


@dataclass(frozen=True)
class AgentTurn:
    """What an agent-turn request tells the model: iteratr's prompt and the steps taken since."""

    prompt: str
    steps: tuple[Step, ...]
    tools: tuple[str, ...]
    received_at: float

    @property
    def header(self) -> str:
        return self.prompt.lstrip().splitlines()[0] if self.prompt.strip() else ""


@dataclass(frozen=True)
class Text:
    """Answer with text; this ends the turn."""

    text: str


@dataclass(frozen=True)
class Bash:
    """Call opencode's ``bash`` tool with this command."""

    command: str
    description: str


@dataclass(frozen=True)
class Call:
    """Call any tool the agent offers by name (an MCP tool, such as ``iteratr_task_add``) with these arguments."""

    tool: str
    arguments: dict[str, Any]


Action = Text | Bash | Call
Script = Callable[[AgentTurn], Action]


# --- the default script ---------------------------------------------------------------------------------------


def spec_tasks(prompt: str) -> list[str]:
    """The ``- [ ] `` lines of the spec quoted in a prompt, in order, without duplicates."""
    seen: list[str] = []
    for match in SPEC_TASK_RE.finditer(prompt):
        content = match.group("content")
        if content not in seen:
            seen.append(content)
    return seen


def parse_json_output(output: str) -> Any:
    """The JSON value a command printed: the whole output, else its last line that parses."""
    text = output.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line.strip())
        except ValueError:
            continue
    raise ValueError(f"no JSON in command output: {output[:500]!r}")


def _tool(args: str) -> str:
    # $ITERATR_BIN is expanded by the agent's shell: that proves iteratr's environment reached it.
    return f"$ITERATR_BIN tool {args}"


def _step_kind(step: Step) -> str:
    command = step.command
    for kind in ("task-batch-add", "task-status", "session-complete", "task-next"):
        if f" tool {kind}" in command:
            return kind
    return "other"


def _work_on(task: dict[str, Any]) -> Bash:
    task_id = str(task["id"])
    content = str(task.get("content", ""))
    quoted_id = shlex.quote(task_id)
    command = (
        f"mkdir -p work && printf '%s\\n' {shlex.quote(content)} > work/{quoted_id}.txt"
        f" && {_tool(f'task-status --id {quoted_id} --status completed')}"
        f" && {_tool('iteration-summary --summary ' + shlex.quote(f'Did {task_id}'))}"
    )
    return Bash(command, f"Work on {task_id}")


def diligent_agent(turn: AgentTurn) -> Action:
    """A careful agent driving ``iteratr tool`` through bash, one command per step.

    Planning (the prompt has :data:`PLANNING_MARKER`): load the spec's ``- [ ] `` lines with one
    ``task-batch-add``, then answer. Otherwise: ``task-next``; if a task comes back, create ``work/<id>.txt``, mark
    it completed and record a summary, then ``task-next`` again and call ``session-complete`` when nothing is left;
    then answer.
    """
    steps = turn.steps
    if PLANNING_MARKER in turn.prompt:
        if not steps:
            tasks = [{"content": content} for content in spec_tasks(turn.prompt)]
            return Bash(_tool(f"task-batch-add --tasks {shlex.quote(json.dumps(tasks))}"), "Load the spec's tasks")
        return Text(f"Planned {len(spec_tasks(turn.prompt))} tasks from the spec.")

    if not steps:
        return Bash(_tool("task-next --json"), "Find the next task")
    last = steps[-1]
    kind = _step_kind(last)
    worked = any(_step_kind(step) == "task-status" for step in steps)
    if kind == "task-next":
        task = parse_json_output(last.result)
        if task is None:
            return Bash(_tool("session-complete"), "Every task is done")
        if worked:
            return Text(f"Finished one task; {task['id']} is next.")
        return _work_on(task)
    if kind == "task-status":
        return Bash(_tool("task-next --json"), "Check what is left")
    if kind == "session-complete":
        return Text("All tasks are completed; the session is marked complete.")
    return Text(f"Stopping: unexpected step {last.command!r} with output {last.result[:200]!r}.")


# --- usage ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One answered chat-completions call and the usage reported for it."""

    prompt: str  # the last user message: iteratr's prompt for agent turns; for title calls, opencode's wrapping of it
    title: bool  # a request without ``tools``: opencode asking for a session title
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_for(body_bytes: int, action: Action) -> tuple[int, int]:
    """(prompt, completion) tokens reported for one call: about four bytes a token, of the request and the answer.

    Every call of a turn gets a different figure (each request carries the steps before it, so it grows).
    """
    if isinstance(action, Call):
        return body_bytes // 4, 1 + len(json.dumps(action.arguments).encode()) // 4
    answer = action.text if isinstance(action, Text) else action.command + action.description
    return body_bytes // 4, 1 + len(answer.encode()) // 4


# --- request parsing ------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(str(p) for p in parts)
    return ""


def parse_turn(body: dict[str, Any]) -> AgentTurn:
    """The prompt (last user message) and the tool steps that follow it in a chat-completions request."""
    messages: list[dict[str, Any]] = list(body.get("messages") or [])
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    prompt = _content_text(messages[last_user].get("content")) if last_user >= 0 else ""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    order: list[str] = []
    results: dict[str, str] = {}
    for message in messages[last_user + 1 :]:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {"raw": function.get("arguments")}
                calls[call["id"]] = (str(function.get("name", "")), arguments)
                order.append(call["id"])
        elif message.get("role") == "tool":
            results[str(message.get("tool_call_id"))] = _content_text(message.get("content"))
    steps = tuple(Step(calls[i][0], calls[i][1], results.get(i, "")) for i in order)
    tools = tuple(str((t.get("function") or {}).get("name", "")) for t in body.get("tools") or [])
    return AgentTurn(prompt=prompt, steps=steps, tools=tools, received_at=time.time())


def next_step(script: Script, turn: AgentTurn, error: Callable[[str], None]) -> Action:
    """The script's next step in ``turn``, bounded: a turn of :data:`MAX_STEPS_PER_TURN` steps is ended with a text.

    A failing script ends the turn too, instead of an HTTP 500 that the agent would retry with backoff; the
    failure goes to ``error``, for the test to see.
    """
    if len(turn.steps) >= MAX_STEPS_PER_TURN:
        return Text(f"Stopping after {len(turn.steps)} steps.")
    try:
        return script(turn)
    except Exception as exc:
        error(f"script failed on {turn.header!r}: {type(exc).__name__}: {exc}")
        return Text(f"The scripted model failed: {exc}")


# --- the server -----------------------------------------------------------------------------------------------


@dataclass
class _State:
    script: Script
    turns: list[AgentTurn] = field(default_factory=list)
    title_requests: int = 0
    served: list[Served] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    counter: int = 0

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: each response ends by closing the connection, so streams need no chunked encoding.
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; errors are recorded in state.errors

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.server.state
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError(f"request body of {length} bytes is over the {MAX_BODY_BYTES} limit")
            raw = self.rfile.read(length) or b"{}"
            body = json.loads(raw)
            action = self._decide(body)
        except Exception as exc:  # the test reads state.errors; opencode gets a 500 it will report
            state.error(f"{type(exc).__name__}: {exc}")
            self._send_json(500, {"error": {"message": f"scripted model failed: {exc}"}})
            return
        prompt_tokens, completion_tokens = usage_for(len(raw), action)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        served = Served(parse_turn(body).prompt, not body.get("tools"), prompt_tokens, completion_tokens)
        with state.lock:
            state.served.append(served)
        if body.get("stream"):
            self._stream(action, usage)
        else:
            self._send_json(200, self._completion(action, usage))

    def _decide(self, body: dict[str, Any]) -> Action:
        state = self.server.state
        if not body.get("tools"):
            with state.lock:
                state.title_requests += 1
            return Text("Scripted session")
        turn = parse_turn(body)
        with state.lock:
            state.turns.append(turn)
            state.changed.notify_all()
        return next_step(state.script, turn, state.error)

    def _next_id(self) -> str:
        state = self.server.state
        with state.lock:
            state.counter += 1
            return f"{state.counter}"

    def _completion(self, action: Action, usage: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(action, Text):
            message["content"] = action.text
        else:
            message["tool_calls"] = [self._tool_call(action)]
        return {
            "id": f"chatcmpl-{self._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop" if isinstance(action, Text) else "tool_calls"}
            ],
            "usage": usage,
        }

    def _tool_call(self, action: Bash | Call) -> dict[str, Any]:
        if isinstance(action, Call):
            name, arguments = action.tool, json.dumps(action.arguments)
        else:
            name, arguments = "bash", json.dumps({"command": action.command, "description": action.description})
        return {
            "id": f"call_{self._next_id()}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    def _stream(self, action: Action, usage: dict[str, int]) -> None:
        completion_id = f"chatcmpl-{self._next_id()}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, last: bool = False) -> bytes:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if last:
                payload["usage"] = usage
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        if isinstance(action, Text):
            events.append(chunk({"content": action.text}))
            events.append(chunk({}, "stop", last=True))
        else:
            call = self._tool_call(action)
            events.append(chunk({"tool_calls": [{"index": 0, **call}]}))
            events.append(chunk({}, "tool_calls", last=True))
        events.append(b"data: [DONE]\n\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(event)
            self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class ScriptedModelServer(LocalServer):
    """The server; use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, script: Script = diligent_agent) -> None:
        super().__init__()
        self._state = _State(script=script)

    def bind(self) -> ThreadingHTTPServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = self._state
        return server

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def turns(self) -> list[AgentTurn]:
        """Every agent-turn request so far, in arrival order (one per model call, several per ACP turn)."""
        with self._state.lock:
            return list(self._state.turns)

    @property
    def prompts(self) -> list[str]:
        """The distinct prompts the model received, in order of first arrival."""
        seen: list[str] = []
        for turn in self.turns:
            if turn.prompt not in seen:
                seen.append(turn.prompt)
        return seen

    @property
    def errors(self) -> list[str]:
        """Failures of the script or of request parsing (each also answered with HTTP 500)."""
        with self._state.lock:
            return list(self._state.errors)

    @property
    def served(self) -> list[Served]:
        """Every answered call (agent turns and title requests) with the usage reported for it, in order."""
        with self._state.lock:
            return list(self._state.served)

    @property
    def title_requests(self) -> int:
        with self._state.lock:
            return self._state.title_requests

    def wait_for_turn(self, predicate: Callable[[AgentTurn], bool], timeout: float) -> AgentTurn:
        """The first recorded turn matching ``predicate``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                for turn in self._state.turns:
                    if predicate(turn):
                        return turn
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching model request within {timeout}s")
                self._state.changed.wait(remaining)
