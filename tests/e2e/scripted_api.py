"""What the scripted model servers for other provider APIs share: the recorded state, the HTTP plumbing, start/stop.

``model_server.ScriptedModelServer`` speaks OpenAI chat-completions (opencode). The agents of the other presets
speak their vendor's API: Anthropic Messages (Claude Code, ``anthropic_server``) and the Gemini API (Gemini CLI,
``gemini_server``). Each of those servers parses its API's request into the same :class:`AgentTurn` and runs the
same scripts (``model_server.diligent_agent``), so one script drives every agent; only the wire format differs.

A subclass says how to answer one POST (:meth:`ScriptedApiServer.answer`); this module records every agent turn,
every served call with its usage (:class:`model_server.Served`) and every failure, as the OpenAI server does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .local_server import LocalServer
from .model_server import (
    MAX_BODY_BYTES,
    Action,
    AgentTurn,
    Script,
    Served,
    Text,
    diligent_agent,
    next_step,
    usage_for,
)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a JSON body, or (``stream``) server-sent events, each a ready ``bytes`` chunk."""

    status: int = 200
    payload: dict[str, Any] | list[Any] | None = None
    stream: list[bytes] | None = None


@dataclass
class ApiState:
    script: Script
    turns: list[AgentTurn] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    side_requests: list[str] = field(default_factory=list)  # calls that are not agent turns (titles, checks)
    models: list[str] = field(default_factory=list)  # the model each agent turn asked for, as the wire says
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    counter: int = 0

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)
            self.changed.notify_all()


class ScriptedApiServer(LocalServer):
    """A scripted model server on 127.0.0.1 (random port); subclasses implement :meth:`answer`."""

    def __init__(self, script: Script = diligent_agent) -> None:
        super().__init__()
        self.state = ApiState(script=script)

    # -- what a subclass provides ----------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict[str, Any], raw: bytes) -> Reply:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------------------

    def decide(self, turn: AgentTurn, model: str) -> Action:
        """Record the agent turn (and the model it asked for) and ask the script for the next step (bounded; a
        failing script ends the turn)."""
        state = self.state
        with state.lock:
            state.turns.append(turn)
            state.models.append(model)
            state.changed.notify_all()
        return next_step(state.script, turn, state.error)

    def record_served(self, served: Served) -> None:
        with self.state.lock:
            self.state.served.append(served)

    def serve(
        self, turn: AgentTurn, is_turn: bool, model: str, raw: bytes, side: tuple[str, str] | None = None
    ) -> tuple[Action, Served]:
        """The answer to one call and its usage, recorded: an agent turn (``is_turn``: the request offers tools) is
        the script's next step; any other call is a side request, listed and answered with a short text. ``side`` is
        (what the call is listed as, its answer): by default ("no-tools call", "Scripted session")."""
        action: Action
        if is_turn:
            action = self.decide(turn, model)
        else:
            label, text = side or ("no-tools call", "Scripted session")
            self.record_side(f"{label}: {turn.prompt[:80]!r}")
            action = Text(text)
        input_tokens, output_tokens = usage_for(len(raw), action)
        served = Served(turn.prompt, not is_turn, input_tokens, output_tokens)
        self.record_served(served)
        return action, served

    def record_side(self, what: str) -> None:
        with self.state.lock:
            self.state.side_requests.append(what)

    # -- life cycle ------------------------------------------------------------------------------------------

    def bind(self) -> ThreadingHTTPServer:
        return ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def turns(self) -> list[AgentTurn]:
        with self.state.lock:
            return list(self.state.turns)

    @property
    def served(self) -> list[Served]:
        with self.state.lock:
            return list(self.state.served)

    @property
    def errors(self) -> list[str]:
        with self.state.lock:
            return list(self.state.errors)

    @property
    def models(self) -> list[str]:
        with self.state.lock:
            return list(self.state.models)

    @property
    def side_requests(self) -> list[str]:
        with self.state.lock:
            return list(self.state.side_requests)


def sse(event: str | None, payload: dict[str, Any]) -> bytes:
    """One server-sent event (``event:`` line only when named)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload).encode() + b"\n\n"


def _make_handler(owner: ScriptedApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: each response ends by closing the connection, so streams need no chunked encoding.
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # failures are recorded in state.errors

        def do_GET(self) -> None:
            self._serve("GET", b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                owner.state.error(f"request body of {length} bytes is over the {MAX_BODY_BYTES} limit")
                self._send(Reply(413, {"error": {"message": "too large"}}))
                return
            self._serve("POST", self.rfile.read(length))

        def _serve(self, method: str, raw: bytes) -> None:
            try:
                body = json.loads(raw) if raw.strip() else {}
                reply = owner.answer(method, self.path, body if isinstance(body, dict) else {}, raw)
            except Exception as exc:
                owner.state.error(f"{method} {self.path}: {type(exc).__name__}: {exc}")
                reply = Reply(500, {"error": {"message": f"scripted model failed: {exc}"}})
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            if reply.stream is not None:
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in reply.stream:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                return
            data = json.dumps(reply.payload if reply.payload is not None else {}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def text_blocks(content: Any) -> Iterator[str]:
    """The text of a message's content: a string, or the ``text`` of its text blocks."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                yield str(block.get("text", ""))
